// Linux calls Swift's Glibc module does not expose (variadic syscall(2), GNU
// extensions, the packed epoll_event). Thin static inline wrappers only; no state.
#ifndef FIVED_CSYSTEM_SHIM_H
#define FIVED_CSYSTEM_SHIM_H

// No _GNU_SOURCE here: defining it changes declarations (fd_set among them)
// relative to the other Clang modules of the build (CDispatch), which can break
// module builds. The few GNU functions used are declared explicitly below.
#include <spawn.h>
#include <signal.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <termios.h>

extern int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
extern int pipe2(int fds[2], int flags);
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *fa, int from);
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *fa, const char *path);
extern int posix_openpt(int flags);
extern int grantpt(int fd);
extern int unlockpt(int fd);

// glibc's value of POSIX_SPAWN_SETSID (spawn.h, defined only under __USE_GNU).
#define FIVED_POSIX_SPAWN_SETSID 0x80

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

// A descriptor that polls readable once process `pid` has exited (Linux 5.3+).
static inline int fived_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

// Bytes waiting in a socket's receive queue (ioctl FIONREAD, variadic in C); -1 on error.
static inline int fived_bytes_readable(int fd) {
    int n = 0;
    return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

// eventfd(2) wake-up descriptor, close-on-exec and non-blocking.
static inline int fived_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

// epoll_event is packed on x86_64; these keep its layout on the C side.
static inline int fived_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}
static inline int fived_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, &ev);
}
// Waits and copies up to `max` (at most 256) ready events into parallel arrays.
static inline int fived_epoll_wait(int epfd, uint32_t *events, uint64_t *tokens, int max, int timeout) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout);
    for (int i = 0; i < n; i++) {
        events[i] = evs[i].events;
        tokens[i] = evs[i].data.u64;
    }
    return n;
}

// accept4(2) with close-on-exec and, optionally, O_NONBLOCK.
static inline int fived_accept4(int fd, struct sockaddr *addr, socklen_t *len, int nonblocking) {
    return accept4(fd, addr, len, SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0));
}

// socketpair(2), stream, close-on-exec.
static inline int fived_socketpair_cloexec(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
}

// pipe2(2) with close-on-exec and, optionally, non-blocking ends.
static inline int fived_pipe_cloexec(int fds[2], int nonblocking) {
    return pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0));
}

// Close every descriptor >= lowfd in the child (glibc 2.34+).
static inline int fived_spawn_addclosefrom(posix_spawn_file_actions_t *fa, int lowfd) {
    return posix_spawn_file_actions_addclosefrom_np(fa, lowfd);
}

// chdir in the child before exec (glibc 2.29+).
static inline int fived_spawn_addchdir(posix_spawn_file_actions_t *fa, const char *dir) {
    return posix_spawn_file_actions_addchdir_np(fa, dir);
}

// Default signals, empty mask, and (new_session) a session of the child's own.
static inline short fived_spawn_flags(int new_session) {
    return POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (new_session ? FIVED_POSIX_SPAWN_SETSID : 0);
}

// A new pseudo-terminal master (posix_openpt, close-on-exec, not a controlling
// terminal of fived), its slave unlocked for opening; -1 with errno on failure.
static inline int fived_open_pty_master(void) {
    int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (grantpt(fd) < 0 || unlockpt(fd) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

// The number N of a master's slave, /dev/pts/N (ioctl TIOCGPTN); -1 on error.
static inline int fived_pty_number(int master) {
    unsigned int n = 0;
    return ioctl(master, TIOCGPTN, &n) < 0 ? -1 : (int)n;
}

// Sets a terminal's window size (ioctl TIOCSWINSZ); the kernel signals SIGWINCH
// to the terminal's foreground process group when it changes.
static inline int fived_set_window_size(int fd, unsigned short rows, unsigned short columns,
                                        unsigned short width_pixels, unsigned short height_pixels) {
    struct winsize size;
    size.ws_row = rows;
    size.ws_col = columns;
    size.ws_xpixel = width_pixels;
    size.ws_ypixel = height_pixels;
    return ioctl(fd, TIOCSWINSZ, &size);
}

// Adds "open `path` as descriptor `fd`" to a spawn's file actions.
static inline int fived_spawn_addopen(posix_spawn_file_actions_t *fa, int fd, const char *path, int flags) {
    return posix_spawn_file_actions_addopen(fa, fd, path, flags, 0);
}

#endif
