"""A real OpenID provider for the single sign-on tests: django-oidc-provider in a Django project of its own.

`serve.py` runs it in a second process on 127.0.0.1 (its own SQLite database in the test's folder, its own
settings; it never imports the portal). The test decides who may sign in there and with which groups through a
JSON state file the provider reads at every request (`fixture.py`), and can ask it to hand out a tampered ID
token (bad signature, wrong audience, expired, an old token replayed) to see the portal refuse it.
"""
