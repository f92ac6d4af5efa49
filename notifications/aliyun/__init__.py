"""Everything Alibaba Cloud (Aliyun) SMS, for mainland-China numbers: the sender that turns the
dispatcher's neutral `Text` into a `SendSms` of an approved template (sms.py), and the poller
that fetches delivery reports with `QuerySendDetails` (reports.py). SMS only: +86 calls go
through Twilio. Configuring it: docs/aliyun.md. Nothing outside this package knows Aliyun.
"""
