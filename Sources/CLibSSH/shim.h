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

#endif
