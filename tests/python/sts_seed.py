"""The seed authentication flow with VMware's own STS client (PyPI pyvmomi).

1. pyVim.sso.SsoAuthenticator.get_bearer_saml_assertion gets a bearer token
   from the STS at STS_URL for USER/PASSWORD;
2. the token creates a session: POST /api/session with
   Authorization: SIGN token="<base64(gzip(token))>";
3. the same call with a wrong password must fail with the STS's SOAP fault.

Usage: sts_seed.py STS_URL REST_HOST REST_PORT USER PASSWORD [PINNED_CERT_PEM]
With PINNED_CERT_PEM (https), pyVmomi pins the STS certificate and the REST
call checks that the server presents the same one.
Prints one JSON object on stdout; any failure raises (non-zero exit).
"""
import base64
import gzip
import http.client
import json
import ssl
import sys

from pyVim.sso import SoapException, SsoAuthenticator


def main():
    sts_url, host, port, user, password = sys.argv[1:6]
    pinned = sys.argv[6] if len(sys.argv) > 6 else None
    context = ssl._create_unverified_context() if pinned else None
    sts = SsoAuthenticator(sts_url, sts_cert=pinned)
    token = sts.get_bearer_saml_assertion(user, password, token_duration=600, ssl_context=context)

    header = 'SIGN token="%s"' % base64.b64encode(gzip.compress(token.encode("utf-8"))).decode("ascii")
    if pinned:
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
    else:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/api/session", headers={"Authorization": header})
    if pinned:
        with open(pinned) as f:
            expected = ssl.PEM_cert_to_DER_cert(f.read())
        if connection.sock.getpeercert(True) != expected:
            raise SystemExit("the REST endpoint presented another certificate than the pinned one")
    response = connection.getresponse()
    body = response.read().decode("utf-8")

    try:
        sts.get_bearer_saml_assertion(user, password + "-wrong", ssl_context=context)
        fault = None
    except SoapException as error:
        fault = error._fault_code

    print(json.dumps({"token": token, "status": response.status, "body": body, "wrong_password_fault": fault}))


if __name__ == "__main__":
    main()
