"""One SSH channel message, built field by field, for the test peers."""
from paramiko.message import Message


def channel_message(kind, channel, *fields):
    """SSH_MSG_CHANNEL_* `kind` for the peer's end of `channel` (its
    remote_chanid), then each field: bool as boolean, int as uint32, else as
    string (RFC 4251 §5)."""
    m = Message()
    m.add_byte(kind)
    m.add_int(channel.remote_chanid)
    for f in fields:
        if isinstance(f, bool):
            m.add_boolean(f)
        elif isinstance(f, int):
            m.add_int(f)
        else:
            m.add_string(f)
    return m
