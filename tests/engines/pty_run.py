#!/usr/bin/env python3
"""Run a command on a new pseudo-terminal, type into it, and print what it shows.

usage: pty_run.py INPUT COMMAND [ARG...]

INPUT ("\\n" for newlines) is typed once the command has printed something (its prompt),
or after two seconds. Everything the terminal shows goes to stdout; the exit code is the
command's. Gives up after 60 seconds.
"""
import os
import pty
import select
import sys
import time


def main():
    text = sys.argv[1].encode().decode("unicode_escape").encode()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.argv[2], sys.argv[2:])
    out = b""
    typed = False
    start = time.time()
    deadline = start + 60
    while time.time() < deadline:
        if not typed and (out or time.time() - start > 2):
            os.write(fd, text)
            typed = True
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the command and everything on the terminal are gone
                break
            if not data:
                break
            out += data
    else:
        os.kill(pid, 9)
    sys.stdout.write(out.decode(errors="replace"))
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)


if __name__ == "__main__":
    main()
