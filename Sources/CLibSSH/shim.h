// C glue for libssh 0.10: macros and inline helpers Swift cannot see directly.
// Nothing here holds state; every function is a thin static inline wrapper.
#ifndef FIVED_CLIBSSH_SHIM_H
#define FIVED_CLIBSSH_SHIM_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
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

// ---------------------------------------------------------------------------
// Feeding libssh's packet reader from fived's own socket reads.
//
// libssh 0.10.6 reads a session's socket 4096 bytes per poll (socket.c
// ssh_socket_pollcallback, MAX_BUF_SIZE in priv.h): an upload costs a poll(2)
// and a recv(2) per 4 KiB. fived reads the socket itself, in pieces of up to
// 256 KiB, and hands the bytes to the data callback libssh registered on the
// session's socket (packet.c ssh_packet_socket_callback) exactly as
// ssh_socket_pollcallback does: with the socket's poll handle locked (so a
// nested poll inside a packet handler leaves the socket's input alone,
// poll.c ssh_poll_ctx_dopoll), calling again while it consumes and the socket
// stays connected. Bytes it does not consume (part of a packet) go back into
// the socket's input buffer with ssh_buffer_add_data, where libssh's own next
// read appends to them; libssh's buffered input is taken out first
// (ssh_buffer_get, ssh_buffer_reinit), so the byte order is kept.
//
// The mirrors below follow libssh-0.10.6 include/libssh/session.h (the head of
// struct ssh_session_struct), src/socket.c (struct ssh_socket_struct),
// src/buffer.c (struct ssh_buffer_struct) and src/poll.c (the poll handle and
// context), x86_64 and aarch64 layouts. Nothing is touched unless the library
// reports version 0.10.6 and the mirror agrees with libssh's public getters
// and with itself: the socket names the session and ssh_get_fd's descriptor,
// the input buffer agrees with ssh_buffer_get/ssh_buffer_get_len, the poll
// handle is the one its context holds for that descriptor and belongs to the
// socket, the socket callbacks belong to the session and their data callback
// lies in libssh's own code. Otherwise fived_socket_of returns NULL and fived
// lets libssh read as usual. The only fields written are the ones
// ssh_poll_ctx_dopoll writes around a callback (the handle's lock count and
// the descriptor's poll events), put back as it puts them back.
struct fived_ssh_session_head_0_10 {
    struct {
        int error_code;
        char error_buffer[1024];  // ERROR_BUFFERLEN
    } error;
    void *callbacks;
    int log_verbosity;
    void *socket;
};
struct fived_ssh_buffer_0_10 {
    bool secure;
    uint32_t used;
    uint32_t allocated;
    uint32_t pos;
    uint8_t *data;
};
struct fived_ssh_socket_0_10 {
    int fd;
    int fd_is_socket;
    int last_errno;
    int read_wontblock;
    int write_wontblock;
    int data_except;
    int state;  // enum ssh_socket_states_e: 2 is SSH_SOCKET_CONNECTED
    ssh_buffer out_buffer;
    ssh_buffer in_buffer;
    ssh_session session;
    struct ssh_socket_callbacks_struct *callbacks;
    void *poll_handle;
};
struct fived_ssh_poll_handle_0_10 {
    void *ctx;
    ssh_session session;
    union {
        int fd;
        size_t idx;
    } x;
    short events;
    uint32_t lock_cnt;
    void *cb;
    void *cb_data;
};
struct fived_ssh_poll_ctx_0_10 {
    struct fived_ssh_poll_handle_0_10 **pollptrs;
    struct pollfd *pollfds;
    size_t polls_allocated;
    size_t polls_used;
    size_t chunk_size;
};
enum { FIVED_SSH_SOCKET_CONNECTED_0_10 = 2 };

// glibc's dladdr and Dl_info (dlfcn.h declares them only under _GNU_SOURCE,
// which the Glibc module is built without): the object a code address lies in.
struct fived_dl_info {
    const char *dli_fname;
    void *dli_fbase;
    const char *dli_sname;
    void *dli_saddr;
};
extern int fived_dladdr(const void *address, struct fived_dl_info *info) __asm__("dladdr");

static inline int fived_buffer_agrees(ssh_buffer buffer) {
    const struct fived_ssh_buffer_0_10 *b = (const struct fived_ssh_buffer_0_10 *)buffer;
    if (buffer == NULL || b->secure) return 0;
    if (b->pos > b->used || b->used > b->allocated) return 0;
    if (ssh_buffer_get_len(buffer) != b->used - b->pos) return 0;
    return b->data == NULL ? b->used == 0 : ssh_buffer_get(buffer) == (void *)(b->data + b->pos);
}

// The session's socket, connected, idle in libssh's poll loop and laid out as
// 0.10.6's; NULL otherwise.
static inline struct fived_ssh_socket_0_10 *fived_socket_of(ssh_session session) {
    static const void *verified_callback = NULL;  // a data callback found inside libssh
    static int version_checked = 0;                // 1: the library is 0.10.6; -1: it is not
    if (session == NULL) return NULL;
    int version = __atomic_load_n(&version_checked, __ATOMIC_RELAXED);
    if (version == 0) {
        const char *text = ssh_version(0);
        version = text != NULL && strncmp(text, "0.10.6/", 7) == 0 ? 1 : -1;
        __atomic_store_n(&version_checked, version, __ATOMIC_RELAXED);
    }
    if (version != 1) return NULL;
    const struct fived_ssh_session_head_0_10 *h = (const struct fived_ssh_session_head_0_10 *)session;
    if ((const void *)ssh_get_error(session) != (const void *)h->error.error_buffer) return NULL;
    if (h->error.error_code != ssh_get_error_code(session)) return NULL;
    struct fived_ssh_socket_0_10 *s = (struct fived_ssh_socket_0_10 *)h->socket;
    if (s == NULL || s->session != session || s->fd < 0 || s->fd != ssh_get_fd(session)) return NULL;
    if (s->fd_is_socket != 1 || s->data_except != 0 || s->state != FIVED_SSH_SOCKET_CONNECTED_0_10) return NULL;
    if (!fived_buffer_agrees(s->in_buffer) || !fived_buffer_agrees(s->out_buffer)) return NULL;
    const struct ssh_socket_callbacks_struct *cb = s->callbacks;
    if (cb == NULL || cb->userdata != (void *)session || cb->data == NULL) return NULL;
    const struct fived_ssh_poll_handle_0_10 *p = (const struct fived_ssh_poll_handle_0_10 *)s->poll_handle;
    if (p == NULL || p->cb_data != (void *)s || p->cb == NULL || p->ctx == NULL || p->lock_cnt != 0) return NULL;
    const struct fived_ssh_poll_ctx_0_10 *ctx = (const struct fived_ssh_poll_ctx_0_10 *)p->ctx;
    if (p->x.idx >= ctx->polls_used || ctx->polls_used > ctx->polls_allocated) return NULL;
    if (ctx->pollptrs[p->x.idx] != p || ctx->pollfds[p->x.idx].fd != s->fd) return NULL;
    const void *callback = (const void *)cb->data;
    if (__atomic_load_n(&verified_callback, __ATOMIC_ACQUIRE) != callback) {
        struct fived_dl_info inCallback, inLibrary;
        if (fived_dladdr(callback, &inCallback) == 0 || fived_dladdr((const void *)ssh_version, &inLibrary) == 0) return NULL;
        if (inCallback.dli_fbase == NULL || inCallback.dli_fbase != inLibrary.dli_fbase) return NULL;
        __atomic_store_n(&verified_callback, callback, __ATOMIC_RELEASE);
    }
    return s;
}

// Moves the input libssh has buffered but not yet parsed (part of a packet)
// into `out`. Returns its length (0 when none), or -1 when the layout does not
// check out or it does not fit (nothing is moved then).
static inline long fived_socket_take_input(ssh_session session, void *out, size_t capacity) {
    struct fived_ssh_socket_0_10 *s = fived_socket_of(session);
    if (s == NULL) return -1;
    uint32_t len = ssh_buffer_get_len(s->in_buffer);
    if (len == 0) return 0;
    if (len > capacity) return -1;
    memcpy(out, ssh_buffer_get(s->in_buffer), len);
    if (ssh_buffer_reinit(s->in_buffer) != 0) return -1;
    return (long)len;
}

// Runs libssh's packet reader over `len` bytes read from the session's socket
// (after any input taken with fived_socket_take_input), as
// ssh_socket_pollcallback runs it over a read of its own. Returns the bytes it
// consumed (possibly 0: the rest is part of a packet), or -1 when the layout
// does not check out or libssh holds input of its own (nothing was done).
static inline long fived_socket_feed(ssh_session session, const void *data, size_t len) {
    struct fived_ssh_socket_0_10 *s = fived_socket_of(session);
    if (s == NULL || ssh_buffer_get_len(s->in_buffer) != 0) return -1;
    struct fived_ssh_poll_handle_0_10 *p = (struct fived_ssh_poll_handle_0_10 *)s->poll_handle;
    size_t index = p->x.idx;
    struct fived_ssh_poll_ctx_0_10 *ctx = (struct fived_ssh_poll_ctx_0_10 *)p->ctx;
    p->lock_cnt++;
    size_t done = 0, processed;
    do {
        processed = s->callbacks->data((const uint8_t *)data + done, len - done, s->callbacks->userdata);
        if (processed > len - done) processed = len - done;
        done += processed;
    } while (processed > 0 && done < len && s->state == FIVED_SSH_SOCKET_CONNECTED_0_10);
    // A packet handler may have closed the socket, which frees its poll handle
    // (socket.c ssh_socket_close); touch the handle only if it is still the socket's.
    if (s->poll_handle == (void *)p) {
        p->lock_cnt--;
        if (index < ctx->polls_used && ctx->pollptrs[index] == p) ctx->pollfds[index].events = p->events;
    }
    return (long)done;
}

// Puts bytes fed but not consumed (part of a packet) back as the socket's
// buffered input, for libssh's next read to append to. Returns 1 when done, 0
// when the layout does not check out, libssh already holds other input, or
// memory ran out.
static inline int fived_socket_return_input(ssh_session session, const void *data, size_t len) {
    if (len == 0) return 1;
    if (len > UINT32_MAX) return 0;
    struct fived_ssh_socket_0_10 *s = fived_socket_of(session);
    if (s == NULL || ssh_buffer_get_len(s->in_buffer) != 0) return 0;
    return ssh_buffer_add_data(s->in_buffer, data, (uint32_t)len) == 0;
}

#endif
