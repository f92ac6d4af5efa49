"""Web push (RFC 8030 with VAPID, RFC 8292, and aes128gcm payloads, RFC 8291) through
`pywebpush`: the sender for the `push` channel kind (docs/web-push.md)."""
