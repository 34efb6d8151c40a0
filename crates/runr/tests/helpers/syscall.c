/* Make one raw system call, all arguments zero, and print how it ended:
 * "syscall N: ok" or "syscall N: errno E". Used to tell a seccomp filter's answer
 * from the kernel's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: syscall NUMBER\n");
        return 2;
    }
    long nr = strtol(argv[1], NULL, 10);
    long r = syscall(nr, 0, 0, 0, 0, 0, 0);
    if (r < 0)
        printf("syscall %ld: errno %d\n", nr, errno);
    else
        printf("syscall %ld: ok\n", nr);
    return 0;
}
