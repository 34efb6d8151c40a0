// Which functions of a program run: a breakpoint (int3) on the first byte of every function
// the symbol list names, each taken away the first time it is hit. Follows the program's
// forks; a process that execs another program is let go, and what it ran of ours before
// (a container's init on its way to exec) is not counted: it is not in the long-lived
// process's memory. Used by scripts/hot-code/record.sh to list the code the shim runs.
//
//   trace SYMBOLS OUT PROGRAM [ARGS...]
//
// SYMBOLS: lines "HEXOFFSET NAME" (the function's offset in the binary's address space,
// as `nm` prints it for a position-independent binary). OUT: the names hit, in the order
// first hit. The tracer detaches from the caller at once (it forks; the parent waits only
// for PROGRAM's first process, and exits with its status), so a caller that waits for
// PROGRAM (containerd, waiting on `shim start`) is not kept waiting by the processes
// PROGRAM leaves running.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

struct bp {
  uint64_t off;
  char *name;
  int hit;
};
static struct bp *bps;
static size_t nbps;

struct proc {
  pid_t pid;
  size_t *hits; // indexes into bps, in order
  size_t nhits, cap;
};
static struct proc *procs;
static size_t nprocs;
static uint64_t base;
static size_t *order; // hits of processes that did not exec, in order
static size_t norder;

static int by_off(const void *a, const void *b) {
  const struct bp *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

static struct proc *proc_of(pid_t pid) {
  for (size_t i = 0; i < nprocs; i++)
    if (procs[i].pid == pid) return &procs[i];
  procs = realloc(procs, (nprocs + 1) * sizeof *procs);
  procs[nprocs] = (struct proc){.pid = pid};
  return &procs[nprocs++];
}

// A process is gone: its hits count (keep) or not (it exec'd).
static void forget(pid_t pid, int keep) {
  for (size_t i = 0; i < nprocs; i++) {
    if (procs[i].pid != pid) continue;
    if (keep)
      for (size_t j = 0; j < procs[i].nhits; j++) {
        size_t b = procs[i].hits[j];
        if (bps[b].hit) continue;
        bps[b].hit = 1;
        order = realloc(order, (norder + 1) * sizeof *order);
        order[norder++] = b;
      }
    free(procs[i].hits);
    procs[i] = procs[--nprocs];
    return;
  }
}

static struct bp *find(uint64_t off) {
  struct bp key = {.off = off};
  return bsearch(&key, bps, nbps, sizeof *bps, by_off);
}

static uint64_t load_base(pid_t pid, const char *exe) {
  char path[64], line[4096];
  snprintf(path, sizeof path, "/proc/%d/maps", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char real[4096];
  if (!realpath(exe, real)) return 0;
  uint64_t lo = 0;
  while (fgets(line, sizeof line, f)) {
    uint64_t start, off;
    char file[4096] = "";
    if (sscanf(line, "%lx-%*x %*s %lx %*s %*s %4095s", &start, &off, file) >= 2 &&
        strcmp(file, real) == 0 && off == 0) {
      lo = start;
      break;
    }
  }
  fclose(f);
  return lo;
}

static void put_byte(pid_t pid, uint64_t addr, int byte, uint8_t *old) {
  errno = 0;
  long word = ptrace(PTRACE_PEEKTEXT, pid, (void *)addr, 0);
  if (errno) return;
  if (old) *old = (uint8_t)word;
  word = (word & ~0xffL) | byte;
  ptrace(PTRACE_POKETEXT, pid, (void *)addr, (void *)word);
}

static uint8_t *orig;

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: trace SYMBOLS OUT PROGRAM [ARGS...]\n");
    return 2;
  }
  FILE *sf = fopen(argv[1], "r");
  if (!sf) { perror(argv[1]); return 2; }
  char line[8192];
  while (fgets(line, sizeof line, sf)) {
    uint64_t off;
    char name[8000];
    if (sscanf(line, "%lx %7999s", &off, name) != 2) continue;
    bps = realloc(bps, (nbps + 1) * sizeof *bps);
    bps[nbps++] = (struct bp){.off = off, .name = strdup(name)};
  }
  fclose(sf);
  qsort(bps, nbps, sizeof *bps, by_off);
  // One breakpoint an address (aliases share one): a second would save the first's int3
  // as the original byte.
  size_t kept = 0;
  for (size_t i = 0; i < nbps; i++)
    if (kept == 0 || bps[i].off != bps[kept - 1].off) bps[kept++] = bps[i];
  nbps = kept;
  orig = calloc(nbps, 1);

  // The caller's process waits for the first process's exit status through this pipe.
  int status_pipe[2];
  if (pipe(status_pipe)) { perror("pipe"); return 2; }
  pid_t tracer = fork();
  if (tracer < 0) { perror("fork"); return 2; }
  if (tracer > 0) {
    close(status_pipe[1]);
    int code = 1;
    if (read(status_pipe[0], &code, sizeof code) != sizeof code) code = 1;
    return code;
  }
  close(status_pipe[0]);
  setsid();

  pid_t child = fork();
  if (child == 0) {
    close(status_pipe[1]);
    ptrace(PTRACE_TRACEME, 0, 0, 0);
    raise(SIGSTOP);
    execv(argv[3], argv + 3);
    _exit(127);
  }
  // The tracer keeps none of the caller's stdio (a caller may read them to end of file).
  int null = open("/dev/null", O_RDWR);
  dup2(null, 0);
  dup2(null, 1);
  dup2(null, 2);
  int st;
  waitpid(child, &st, 0); // the SIGSTOP
  ptrace(PTRACE_SETOPTIONS, child, 0,
         PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC);
  ptrace(PTRACE_CONT, child, 0, 0);
  waitpid(child, &st, 0); // the exec of PROGRAM
  base = load_base(child, argv[3]);
  for (size_t i = 0; i < nbps; i++) put_byte(child, base + bps[i].off, 0xcc, &orig[i]);
  proc_of(child);
  ptrace(PTRACE_CONT, child, 0, 0);

  int first_reported = 0;
  for (;;) {
    pid_t pid = waitpid(-1, &st, __WALL);
    if (pid < 0) break;
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      forget(pid, 1);
      if (pid == child && !first_reported) {
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        (void)!write(status_pipe[1], &code, sizeof code);
        close(status_pipe[1]);
        first_reported = 1;
      }
      continue;
    }
    if (!WIFSTOPPED(st)) continue;
    int sig = WSTOPSIG(st), event = st >> 16;
    if (event == PTRACE_EVENT_EXEC) {
      // Another program now: what it ran of ours does not count, and it is let go.
      forget(pid, 0);
      ptrace(PTRACE_DETACH, pid, 0, 0);
      continue;
    }
    if (event) {
      // A fork or clone: the new process is traced already (its first stop comes apart).
      unsigned long np;
      ptrace(PTRACE_GETEVENTMSG, pid, 0, &np);
      proc_of((pid_t)np);
      ptrace(PTRACE_CONT, pid, 0, 0);
      continue;
    }
    if (sig == SIGTRAP) {
      struct user_regs_struct regs;
      ptrace(PTRACE_GETREGS, pid, 0, &regs);
      struct bp *b = find(regs.rip - 1 - base);
      if (b) {
        size_t i = b - bps;
        struct proc *p = proc_of(pid);
        if (p->nhits == p->cap) {
          p->cap = p->cap ? p->cap * 2 : 1024;
          p->hits = realloc(p->hits, p->cap * sizeof *p->hits);
        }
        p->hits[p->nhits++] = i;
        put_byte(pid, base + b->off, orig[i], NULL);
        regs.rip -= 1;
        ptrace(PTRACE_SETREGS, pid, 0, &regs);
        ptrace(PTRACE_CONT, pid, 0, 0);
        continue;
      }
    }
    if (sig == SIGSTOP) sig = 0; // a new process's first stop
    ptrace(PTRACE_CONT, pid, 0, (void *)(long)sig);
  }
  FILE *out = fopen(argv[2], "w");
  if (!out) return 2;
  for (size_t i = 0; i < norder; i++) fprintf(out, "%s\n", bps[order[i]].name);
  fclose(out);
  return 0;
}
