"""What the portal and the dashboard share: templates, static files, cookies and HTML errors.

Pages are server-rendered (Jinja2) with HTMX for partial updates, and call the same domain
services as the API, so no business rule is written twice.
"""
