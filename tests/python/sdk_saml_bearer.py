"""VMware's official SDK creates a session with a SAML bearer token.

Usage: python sdk_saml_bearer.py BASE_URL TOKEN_FILE EXPECTED_USER
"""
import sys

import requests
from com.vmware.cis_client import Session
from com.vmware.vapi.std.errors_client import Unauthenticated
from vmware.vapi.lib.connect import get_requests_connector
from vmware.vapi.security.session import create_session_security_context
from vmware.vapi.security.sso import create_saml_bearer_security_context
from vmware.vapi.stdlib.client.factories import StubConfigurationFactory

base, token_file, expected_user = sys.argv[1:4]
with open(token_file, encoding="utf-8") as f:
    token = f.read()

http = requests.Session()
http.trust_env = False
connector = get_requests_connector(session=http, url=base + "/api")
config = StubConfigurationFactory.new_std_configuration(connector)

connector.set_security_context(create_saml_bearer_security_context(token.replace("Administrator", "Administrat0r")))
try:
    Session(config).create()
    print("FAILED: a tampered token created a session", flush=True)
    sys.exit(1)
except Unauthenticated:
    print("ok: a tampered token raises Unauthenticated", flush=True)

connector.set_security_context(create_saml_bearer_security_context(token))
session_id = Session(config).create()
print("ok: a bearer token creates a session", flush=True)
connector.set_security_context(create_session_security_context(session_id))
user = Session(config).get().user
if user != expected_user:
    print("FAILED: the session's user is", user, flush=True)
    sys.exit(1)
print("ok: the session's user is the token's NameID", flush=True)
Session(config).delete()
print("SDK checks passed", flush=True)
