"""The daily statistics report: its figures (``figures``), the email
(``mail``), and when it is sent and retried (``schedule``)."""
