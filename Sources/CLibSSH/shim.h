// C glue for libssh 0.10: macros and inline helpers Swift cannot see directly.
// Nothing here holds state; every function is a thin static inline wrapper.
#ifndef FIVED_CLIBSSH_SHIM_H
#define FIVED_CLIBSSH_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>

// ssh_callbacks_init is a macro that sets the struct's size field.
static inline void fived_channel_callbacks_init(struct ssh_channel_callbacks_struct *cb) {
    ssh_callbacks_init(cb);
}

// libssh marks the message getters for public-key authentication and pty
// requests deprecated (in favour of server callbacks, which answer at once and
// so cannot defer a reply); fived needs them for deferred replies.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
static inline ssh_key fived_message_auth_pubkey(ssh_message msg) {
    return ssh_message_auth_pubkey(msg);
}
static inline int fived_message_auth_publickey_state(ssh_message msg) {
    return (int)ssh_message_auth_publickey_state(msg);
}
static inline const char *fived_message_pty_term(ssh_message msg) {
    return ssh_message_channel_request_pty_term(msg);
}
static inline int fived_message_pty_width(ssh_message msg) { return ssh_message_channel_request_pty_width(msg); }
static inline int fived_message_pty_height(ssh_message msg) { return ssh_message_channel_request_pty_height(msg); }
static inline int fived_message_pty_pxwidth(ssh_message msg) { return ssh_message_channel_request_pty_pxwidth(msg); }
static inline int fived_message_pty_pxheight(ssh_message msg) { return ssh_message_channel_request_pty_pxheight(msg); }
#pragma clang diagnostic pop

// ---------------------------------------------------------------------------
// Fields libssh 0.10.6 keeps but does not expose: the peer's window and maximum
// packet size in a channel open, a channel request's want-reply flag and pty
// modes, and the remote maximum packet of an open channel. fived needs them to
// refuse channels whose peer-chosen parameters would make libssh spin
// (channels.c:1444: `maxpacketlen = channel->remote_maxpacket - 10`).
//
// The prefixes below mirror libssh-0.10.6 include/libssh/messages.h and
// channels.h (x86_64 and aarch64 layouts). Every read first checks the mirror
// against libssh's own public getters on the same object (the message type and
// subtype, the session, the originator and destination pointers, the channel
// pointer, the command and subsystem pointers, the remote window); on any
// mismatch the reader returns 0 and fived treats the value as unknown (and
// refuses what depends on it). Nothing is ever written.
struct fived_ssh_auth_request_0_10 {
    char *username;
    int method;
    char *password;
    void *pubkey;
    char *sigtype;
    int signature_state;
    char kbdint_response;
};
struct fived_ssh_channel_request_open_0_10 {
    int type;
    uint32_t sender;
    uint32_t window;
    uint32_t packet_size;
    char *originator;
    uint16_t originator_port;
    char *destination;
    uint16_t destination_port;
};
struct fived_ssh_channel_request_0_10 {
    int type;
    void *channel;
    uint8_t want_reply;
    char *TERM;
    uint32_t width;
    uint32_t height;
    uint32_t pxwidth;
    uint32_t pxheight;
    ssh_string modes;
    char *var_name;
    char *var_value;
    char *command;
    char *subsystem;
};
struct fived_ssh_message_0_10 {
    void *session;
    int type;
    struct fived_ssh_auth_request_0_10 auth_request;
    struct fived_ssh_channel_request_open_0_10 channel_request_open;
    struct fived_ssh_channel_request_0_10 channel_request;
};
struct fived_ssh_channel_0_10 {
    void *session;
    uint32_t local_channel;
    uint32_t local_window;
    int local_eof;
    uint32_t local_maxpacket;
    uint32_t remote_channel;
    uint32_t remote_window;
    int remote_eof;
    uint32_t remote_maxpacket;
    int state;
};

// A channel open (SSH_REQUEST_CHANNEL_OPEN) from `session`: the peer's initial
// window and maximum packet size. Returns 1 when the layout checks out, else 0.
static inline int fived_message_open_parameters(ssh_message msg, ssh_session session,
                                                uint32_t *window, uint32_t *max_packet) {
    const struct fived_ssh_message_0_10 *m = (const struct fived_ssh_message_0_10 *)msg;
    if (msg == NULL || m->session != (void *)session) return 0;
    if (m->type != ssh_message_type(msg) || m->type != SSH_REQUEST_CHANNEL_OPEN) return 0;
    if (m->channel_request_open.type != ssh_message_subtype(msg)) return 0;
    if (m->auth_request.username != NULL || m->auth_request.pubkey != NULL) return 0;
    if (m->channel_request_open.originator != ssh_message_channel_request_open_originator(msg)) return 0;
    if (m->channel_request_open.destination != ssh_message_channel_request_open_destination(msg)) return 0;
    if ((int)m->channel_request_open.originator_port != ssh_message_channel_request_open_originator_port(msg)) return 0;
    if ((int)m->channel_request_open.destination_port != ssh_message_channel_request_open_destination_port(msg)) return 0;
    *window = m->channel_request_open.window;
    *max_packet = m->channel_request_open.packet_size;
    return 1;
}

// A channel request (SSH_REQUEST_CHANNEL) from `session`: whether it asked for
// a reply. Returns 1 when the layout checks out, else 0.
static inline int fived_message_request_wants_reply(ssh_message msg, ssh_session session, int *want_reply) {
    const struct fived_ssh_message_0_10 *m = (const struct fived_ssh_message_0_10 *)msg;
    if (msg == NULL || m->session != (void *)session) return 0;
    if (m->type != ssh_message_type(msg) || m->type != SSH_REQUEST_CHANNEL) return 0;
    if (m->channel_request.type != ssh_message_subtype(msg)) return 0;
    if (m->channel_request.channel != (void *)ssh_message_channel_request_channel(msg)) return 0;
    if (m->channel_request.command != ssh_message_channel_request_command(msg)) return 0;
    if (m->channel_request.subsystem != ssh_message_channel_request_subsystem(msg)) return 0;
    if (m->channel_request.want_reply > 1) return 0;
    *want_reply = m->channel_request.want_reply;
    return 1;
}

// A pty-req's encoded terminal modes (RFC 4254 §8); NULL when unknown.
static inline ssh_string fived_message_pty_modes(ssh_message msg, ssh_session session) {
    int want_reply = 0;
    if (!fived_message_request_wants_reply(msg, session, &want_reply)) return NULL;
    if (ssh_message_subtype(msg) != SSH_CHANNEL_REQUEST_PTY) return NULL;
    const struct fived_ssh_message_0_10 *m = (const struct fived_ssh_message_0_10 *)msg;
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
    if (m->channel_request.TERM != ssh_message_channel_request_pty_term(msg)) return NULL;
#pragma clang diagnostic pop
    return m->channel_request.modes;
}

// The remote maximum packet size of an open channel of `session`. Returns 1
// when the layout checks out, else 0.
static inline int fived_channel_remote_max_packet(ssh_channel channel, ssh_session session, uint32_t *max_packet) {
    const struct fived_ssh_channel_0_10 *c = (const struct fived_ssh_channel_0_10 *)channel;
    if (channel == NULL || c->session != (void *)session || ssh_channel_get_session(channel) != session) return 0;
    if (c->remote_window != ssh_channel_window_size(channel)) return 0;
    if (c->state < 0 || c->state > 4) return 0;
    *max_packet = c->remote_maxpacket;
    return 1;
}

#endif
