// Starting a service's program in a child of the spawner: fork, then, in the
// child, only async-signal-safe system calls (signal(7)) until execve. The
// Swift side fills a spec; nothing in the child runs Swift.
#ifndef FIVED_CHILD_H
#define FIVED_CHILD_H

#include <sys/types.h>

#define FIVED_LIMIT_NOFILE 0
#define FIVED_LIMIT_NPROC 1
#define FIVED_LIMIT_AS 2
#define FIVED_LIMIT_CPU 3
#define FIVED_LIMIT_COUNT 4

// What went wrong in the child before exec, reported on the status pipe with errno.
#define FIVED_STEP_SIGNALS 1
#define FIVED_STEP_SESSION 2
#define FIVED_STEP_TERMINAL 3
#define FIVED_STEP_DESCRIPTORS 4
#define FIVED_STEP_LIMITS 5
#define FIVED_STEP_CAPABILITIES 6
#define FIVED_STEP_GROUPS 7
#define FIVED_STEP_GID 8
#define FIVED_STEP_UID 9
#define FIVED_STEP_NO_NEW_PRIVS 10
#define FIVED_STEP_DIRECTORY 11
#define FIVED_STEP_EXEC 12

struct fived_child_spec {
    const char *path;            // absolute program path
    char *const *argv;           // NULL-terminated
    char *const *envp;           // NULL-terminated
    int stdin_fd, stdout_fd, stderr_fd;  // become 0, 1, 2
    int terminal;                // stdin_fd is a terminal: make it the controlling one (TIOCSCTTY)
    int switch_ids;              // set groups, gid, uid (the spawner is root)
    uid_t uid;
    gid_t gid;
    const gid_t *groups;         // supplementary groups (from getgrouplist)
    int ngroups;
    int drop_capabilities;       // clear the bounding and ambient sets (needs CAP_SETPCAP)
    mode_t umask;
    const char *directory;       // chdir target
    int directory_optional;      // 1: on failure, chdir("/") instead (the user's home)
    int has_limit[FIVED_LIMIT_COUNT];
    unsigned long long limit[FIVED_LIMIT_COUNT];
    int status_fd;               // close-on-exec pipe: {step, errno} written on failure
};

// Forks and starts the program; returns the child's pid, or -1 with errno if
// fork failed. Whether exec succeeded is read from the status pipe: EOF means
// it did, 8 bytes (two ints: step, errno) mean it did not, and the child has
// exited with status 127.
pid_t fived_start_child(const struct fived_child_spec *spec);

// The daemon's privilege drop, from the main thread before the worker threads
// start: clears the capability bounding set (while CAP_SETPCAP is still
// held), sets no supplementary groups, then real, effective and saved gid and
// uid to `gid` and `uid`, checks that uid 0 cannot be regained, and sets
// no_new_privs. 0 on success, -1 with errno (the process must then exit).
int fived_become(uid_t uid, gid_t gid);

// For a process that is not root but holds capabilities (systemd's
// AmbientCapabilities): empties its effective, permitted, inheritable and
// ambient sets and sets no_new_privs. 0 on success, -1 with errno.
int fived_drop_capabilities(void);

// Takes a user's identity for file access (groups, egid, euid) on the calling
// thread only, as sshd's temporarily_use_uid does for its process; the real and
// saved ids stay root's, so fived_thread_restore_identity can return the thread
// to the spawner's own euid, egid and groups (read before any thread started).
// Other threads (the one that forks exec services among them) keep their own.
// Fails with EPERM if the thread keeps effective capabilities as the user
// (SECBIT_NO_SETUID_FIXUP). 0 on success, -1 with errno (the thread's identity
// may then be partly changed: restore it).
int fived_thread_assume_identity(uid_t uid, gid_t gid, const gid_t *groups, int ngroups);
int fived_thread_restore_identity(uid_t uid, gid_t gid, const gid_t *groups, int ngroups);

// A sealed memfd (memfd_create, then F_SEAL_SHRINK|GROW|WRITE|SEAL) holding
// `length` bytes at `bytes`, its offset at 0: contents a reader can take without
// waiting on anything and no one can change. The descriptor, or -1 with errno.
int fived_sealed_copy(const void *bytes, size_t length);

// Names the calling thread (prctl PR_SET_NAME: 15 bytes at most shown in
// /proc/PID/task/TID/comm). 0 on success, -1 with errno.
int fived_name_thread(const char *name);

// The most descriptors one datagram carries.
#define FIVED_MAX_FDS 32

// Sends `bytes` with `nfds` descriptors (at most FIVED_MAX_FDS) as one datagram (SCM_RIGHTS).
// Returns bytes sent or -1 with errno.
ssize_t fived_send_with_fds(int socket, const void *bytes, size_t length, const int *fds, int nfds);

// Receives one datagram and up to `max_fds` descriptors (made close-on-exec).
// `*nfds` gets how many came; MSG_CTRUNC or MSG_TRUNC close what came and fail with EMSGSIZE.
ssize_t fived_receive_with_fds(int socket, void *buffer, size_t capacity, int *fds, int max_fds, int *nfds);

#endif
