#!/usr/bin/env python3
"""Real Python NTLM / Negotiate clients against the array, for tests/ntlm.rs.

Usage: ntlm_client.py MODE ADDR CA_FILE USER PASSWORD PATH [COUNT]

MODE is one of:
  requests-ntlm   requests + requests-ntlm (HttpNtlmAuth): NTLM over one
                  keep-alive connection, then COUNT-1 more requests on it.
  pyspnego        pyspnego's Negotiate (SPNEGO wrapping NTLM) driven by
                  hand over http.client, then COUNT-1 more requests.

ADDR is host:port of the array; TLS is verified against CA_FILE for the
name mail.lab.com. Prints one JSON object: the status and X-Mock-User of
every request, and the negotiated scheme. Exits 3 when the library is
missing (the caller decides whether that skips or fails).
"""

import base64
import json
import socket
import ssl
import sys

NAME = "mail.lab.com"


def fail_missing(exc):
    print(json.dumps({"missing": str(exc)}))
    sys.exit(3)


def tls_context(ca_file):
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def run_requests_ntlm(addr, ca_file, user, password, path, count):
    try:
        import requests
        from requests.adapters import HTTPAdapter
        from requests_ntlm import HttpNtlmAuth
    except ImportError as exc:
        fail_missing(exc)

    class NamedAdapter(HTTPAdapter):
        """Connects to ADDR but verifies the certificate for mail.lab.com
        against CA_FILE."""

        def init_poolmanager(self, *args, **kwargs):
            kwargs["ssl_context"] = tls_context(ca_file)
            kwargs["server_hostname"] = NAME
            kwargs["assert_hostname"] = NAME
            super().init_poolmanager(*args, **kwargs)

    session = requests.Session()
    session.mount("https://", NamedAdapter())
    session.verify = ca_file
    session.auth = HttpNtlmAuth(user, password)
    url = f"https://{addr}{path}"
    results = []
    for _ in range(count):
        resp = session.get(url, headers={"Host": NAME}, timeout=60)
        results.append({"status": resp.status_code, "user": resp.headers.get("X-Mock-User")})
    return {"results": results}


def run_pyspnego(addr, ca_file, user, password, path, count):
    try:
        import spnego
    except ImportError as exc:
        fail_missing(exc)
    import http.client

    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), timeout=60)
    raw = socket.create_connection((host, int(port)), timeout=60)
    conn.sock = tls_context(ca_file).wrap_socket(raw, server_hostname=NAME)

    def get(headers):
        conn.request("GET", path, headers={"Host": NAME, **headers})
        resp = conn.getresponse()
        resp.read()
        return resp

    ctx = spnego.client(user, password, hostname=NAME, service="HTTP", protocol="negotiate")
    token = ctx.step()
    resp = None
    legs = 0
    while token is not None and legs < 4:
        legs += 1
        resp = get({"Authorization": "Negotiate " + base64.b64encode(token).decode()})
        offer = [
            v for k, v in resp.getheaders()
            if k.lower() == "www-authenticate" and v.lower().startswith("negotiate ")
        ]
        if resp.status == 401 and not offer:
            break
        in_token = base64.b64decode(offer[0].split(" ", 1)[1]) if offer else None
        if ctx.complete:
            break
        token = ctx.step(in_token) if in_token is not None else None
        if resp.status != 401:
            break
    results = [{"status": resp.status, "user": resp.getheader("X-Mock-User")}]
    for _ in range(count - 1):
        r = get({})
        results.append({"status": r.status, "user": r.getheader("X-Mock-User")})
    return {"results": results, "complete": ctx.complete, "protocol": ctx.negotiated_protocol}


def main():
    if len(sys.argv) < 7:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    mode, addr, ca_file, user, password, path = sys.argv[1:7]
    count = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    runs = {"requests-ntlm": run_requests_ntlm, "pyspnego": run_pyspnego}
    if mode not in runs:
        print(f"unknown mode {mode}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(runs[mode](addr, ca_file, user, password, path, count)))


if __name__ == "__main__":
    main()
