// C glue for libssh 0.10: macros and inline helpers Swift cannot see directly.
// Nothing here holds state; every function is a thin static inline wrapper.
#ifndef FIVED_CLIBSSH_SHIM_H
#define FIVED_CLIBSSH_SHIM_H

#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>

// ssh_callbacks_init is a macro that sets the struct's size field.
static inline void fived_server_callbacks_init(struct ssh_server_callbacks_struct *cb) {
    ssh_callbacks_init(cb);
}
static inline void fived_channel_callbacks_init(struct ssh_channel_callbacks_struct *cb) {
    ssh_callbacks_init(cb);
}
static inline void fived_session_callbacks_init(struct ssh_callbacks_struct *cb) {
    ssh_callbacks_init(cb);
}

// ssh_options_set / ssh_bind_options_set take `const void *`; these keep the
// value types explicit at the Swift boundary.
static inline int fived_options_set_int(ssh_session s, enum ssh_options_e o, int v) {
    return ssh_options_set(s, o, &v);
}
static inline int fived_options_set_uint64(ssh_session s, enum ssh_options_e o, uint64_t v) {
    return ssh_options_set(s, o, &v);
}
static inline int fived_bind_options_set_int(ssh_bind b, enum ssh_bind_options_e o, int v) {
    return ssh_bind_options_set(b, o, &v);
}

#endif
