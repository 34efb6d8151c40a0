/* Send argv[1] as one datagram to $NOTIFY_SOCKET, as sd_notify(3) would. A test helper,
 * built static so it runs in the busybox rootfs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || argc != 2) {
        fprintf(stderr, "usage: NOTIFY_SOCKET=path sdnotify MESSAGE\n");
        return 2;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0 || sendto(fd, argv[1], strlen(argv[1]), 0, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("sdnotify");
        return 1;
    }
    return 0;
}
