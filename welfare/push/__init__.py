"""Web push to staff phones: subscriptions, the VAPID keys, and SMS as the fallback
(docs/web-push.md)."""
