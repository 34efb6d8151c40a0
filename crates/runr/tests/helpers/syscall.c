/* Make one raw system call and print how it ended: "syscall N: ok R" (R the return value)
 * or "syscall N: errno E". Arguments not given are zero. Used to tell a seccomp filter's
 * answer from the kernel's, and to ask the kernel what a process cannot see in /proc. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2 || argc > 8) {
        fprintf(stderr, "usage: syscall NUMBER [ARG...]\n");
        return 2;
    }
    long nr = strtol(argv[1], NULL, 10);
    long a[6] = {0};
    for (int i = 2; i < argc; i++)
        a[i - 2] = strtol(argv[i], NULL, 10);
    long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (r < 0)
        printf("syscall %ld: errno %d\n", nr, errno);
    else
        printf("syscall %ld: ok %ld\n", nr, r);
    return 0;
}
