#define _GNU_SOURCE
#include "fived_child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static void fail(int status_fd, int step) {
    int report[2] = {step, errno};
    ssize_t unused = write(status_fd, report, sizeof report);
    (void)unused;
    _exit(127);
}

// Moves a descriptor to one at or above 10 so that placing 0, 1 and 2 cannot clobber it.
static int lift(int fd, int status_fd) {
    int lifted = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    if (lifted < 0) fail(status_fd, FIVED_STEP_DESCRIPTORS);
    return lifted;
}

static void child(const struct fived_child_spec *s) {
    int status = s->status_fd;
    sigset_t all;
    sigemptyset(&all);
    if (sigprocmask(SIG_SETMASK, &all, NULL) < 0) fail(status, FIVED_STEP_SIGNALS);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        signal(sig, SIG_DFL);  // fails harmlessly for the real-time signals glibc reserves
    }
    if (setsid() < 0) fail(status, FIVED_STEP_SESSION);

    int in = lift(s->stdin_fd, status), out = lift(s->stdout_fd, status), err = lift(s->stderr_fd, status);
    if (s->terminal && ioctl(in, TIOCSCTTY, 0) < 0) fail(status, FIVED_STEP_TERMINAL);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) fail(status, FIVED_STEP_DESCRIPTORS);

    static const int resources[FIVED_LIMIT_COUNT] = {RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_AS, RLIMIT_CPU};
    for (int i = 0; i < FIVED_LIMIT_COUNT; i++) {
        if (!s->has_limit[i]) continue;
        struct rlimit r = {(rlim_t)s->limit[i], (rlim_t)s->limit[i]};
        if (setrlimit(resources[i], &r) < 0) fail(status, FIVED_STEP_LIMITS);
    }
    if (s->drop_capabilities) {
        // The bounding set can only be cleared while CAP_SETPCAP is held: before setuid.
        for (int cap = 0; cap <= 63; cap++) {
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) fail(status, FIVED_STEP_CAPABILITIES);
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) fail(status, FIVED_STEP_CAPABILITIES);
    if (s->switch_ids) {
        if (setgroups((size_t)s->ngroups, s->groups) < 0) fail(status, FIVED_STEP_GROUPS);
        if (setresgid(s->gid, s->gid, s->gid) < 0) fail(status, FIVED_STEP_GID);
        if (setresuid(s->uid, s->uid, s->uid) < 0) fail(status, FIVED_STEP_UID);
        // Must not be able to return to root.
        if (s->uid != 0 && setuid(0) == 0) {
            errno = EPERM;
            fail(status, FIVED_STEP_UID);
        }
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail(status, FIVED_STEP_NO_NEW_PRIVS);
    umask(s->umask);
    // A home the user cannot enter (or that is hidden) falls back to /, as login(1) does.
    if (chdir(s->directory) < 0 && !(s->directory_optional && chdir("/") == 0)) fail(status, FIVED_STEP_DIRECTORY);
    // Every descriptor from 3 up closes at exec (the status pipe among them).
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3; fd < 65536; fd++) {
            if (fd != status) close(fd);
        }
    }
    execve(s->path, s->argv, s->envp);
    fail(status, FIVED_STEP_EXEC);
}

pid_t fived_start_child(const struct fived_child_spec *spec) {
    pid_t pid = fork();
    if (pid == 0) child(spec);
    return pid;
}

int fived_become(uid_t uid, gid_t gid) {
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    if (setgroups(0, NULL) < 0) return -1;
    if (setresgid(gid, gid, gid) < 0) return -1;
    if (setresuid(uid, uid, uid) < 0) return -1;
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        errno = EPERM;
        return -1;
    }
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

int fived_drop_capabilities(void) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) < 0) return -1;
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

// Raw system calls, not glibc's wrappers: those apply a change to every thread
// of the process (nptl's SIGSETXID broadcast, as POSIX asks), while the kernel
// keeps credentials per thread. Only the calling thread changes here. (While a
// thread's ids differ from the others', a glibc set*id call anywhere in the
// process would abort it: nptl's setxid_error. The spawner makes none.)
// 32-bit architectures have 16-bit legacy calls under the plain names.
#ifdef SYS_setresuid32
#define FIVED_SYS_SETRESUID SYS_setresuid32
#define FIVED_SYS_SETRESGID SYS_setresgid32
#define FIVED_SYS_SETGROUPS SYS_setgroups32
#else
#define FIVED_SYS_SETRESUID SYS_setresuid
#define FIVED_SYS_SETRESGID SYS_setresgid
#define FIVED_SYS_SETGROUPS SYS_setgroups
#endif

int fived_thread_assume_identity(uid_t uid, gid_t gid, const gid_t *groups, int ngroups) {
    if (syscall(FIVED_SYS_SETGROUPS, (size_t)ngroups, groups) < 0) return -1;
    if (syscall(FIVED_SYS_SETRESGID, (gid_t)-1, gid, (gid_t)-1) < 0) return -1;
    if (syscall(FIVED_SYS_SETRESUID, (uid_t)-1, uid, (uid_t)-1) < 0) return -1;
    // Leaving uid 0 clears the effective capabilities, unless the process runs
    // with SECBIT_NO_SETUID_FIXUP (systemd's SecureBits=no-setuid-fixup): then
    // the "user" could still read anything. Refuse to go on as such a user.
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) < 0) return -1;
    if (uid != 0 && (data[0].effective != 0 || data[1].effective != 0)) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

int fived_thread_restore_identity(uid_t uid, gid_t gid, const gid_t *groups, int ngroups) {
    // The effective uid first: setgroups and setresgid need root back.
    if (syscall(FIVED_SYS_SETRESUID, (uid_t)-1, uid, (uid_t)-1) < 0) return -1;
    if (syscall(FIVED_SYS_SETRESGID, (gid_t)-1, gid, (gid_t)-1) < 0) return -1;
    return syscall(FIVED_SYS_SETGROUPS, (size_t)ngroups, groups) < 0 ? -1 : 0;
}

int fived_sealed_copy(const void *bytes, size_t length) {
    int fd = memfd_create("fived-file", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < length) {
        ssize_t n = write(fd, (const char *)bytes + done, length - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto fail;
        done += (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) goto fail;
    if (lseek(fd, 0, SEEK_SET) < 0) goto fail;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int fived_name_thread(const char *name) {
    return prctl(PR_SET_NAME, name, 0, 0, 0);
}

/* Room for FIVED_MAX_FDS descriptors in one SCM_RIGHTS message, aligned for a cmsghdr. */
union fived_rights_control {
    struct cmsghdr header;
    char space[CMSG_SPACE(sizeof(int) * FIVED_MAX_FDS)];
};

/* A message carrying the one buffer `iov`, with no control data yet. */
static struct msghdr fived_message(struct iovec *iov) {
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    return msg;
}

ssize_t fived_send_with_fds(int socket, const void *bytes, size_t length, const int *fds, int nfds) {
    struct iovec iov = {(void *)bytes, length};
    struct msghdr msg = fived_message(&iov);
    union fived_rights_control control;
    if (nfds > FIVED_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    if (nfds > 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.space;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n;
    do {
        n = sendmsg(socket, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t fived_receive_with_fds(int socket, void *buffer, size_t capacity, int *fds, int max_fds, int *nfds) {
    struct iovec iov = {buffer, capacity};
    struct msghdr msg = fived_message(&iov);
    union fived_rights_control control;
    memset(&control, 0, sizeof control);
    msg.msg_control = control.space;
    msg.msg_controllen = sizeof control.space;
    *nfds = 0;
    ssize_t n;
    do {
        n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    int count = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int in = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *received = (int *)CMSG_DATA(c);
        for (int i = 0; i < in; i++) {
            if (count < max_fds) {
                fds[count++] = received[i];
            } else {
                close(received[i]);
            }
        }
    }
    if ((msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0 || count > max_fds) {
        for (int i = 0; i < count; i++) close(fds[i]);
        errno = EMSGSIZE;
        return -1;
    }
    *nfds = count;
    return n;
}
