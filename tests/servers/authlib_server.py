"""A real OAuth 2.0 authorization server and protected API for alf's interop tests.

Authlib (an independent implementation of RFC 6749) with Flask, on 127.0.0.1 by default:

    python authlib_server.py --port 0 --lifetime 2

prints `ALF_AUTHLIB_READY <port>` once listening. `--host` binds another local address instead,
such as 10.42.0.1 on the TAP device inside the private network namespace of tests/tap.sh.
Endpoints:

- POST /oauth/token       client credentials grant; client_secret_basic or client_secret_post
- GET|POST /api/resource  protected by Bearer tokens; expired or revoked tokens get
                          401 with `WWW-Authenticate: Bearer error="invalid_token"`
- POST /_revoke_all       test hook: revoke every issued token
- GET /_stats             test hook: counts and the parameters of the last token request

Issued tokens are random; the server never prints them.
"""

import argparse
import ipaddress
import json
import os
import secrets
import sys
import threading
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Error, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import Flask, jsonify, request

# Client ids and secrets with the characters that break naive encoders: `: + % & = space`.
CLIENTS = {
    "alf basic:+%&=": {"secret": "p@ss: +%&=word", "method": "client_secret_basic"},
    "alf-post": {"secret": "post secret+%&=:", "method": "client_secret_post"},
}
ALLOWED_SCOPES = {"read", "write"}


class Client(ClientMixin):
    def __init__(self, client_id):
        self.client_id = client_id
        self.info = CLIENTS[client_id]

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        if not scope:
            return ""
        return " ".join(s for s in scope.split() if s in ALLOWED_SCOPES)

    def check_redirect_uri(self, redirect_uri):
        return False

    def check_client_secret(self, client_secret):
        return secrets.compare_digest(client_secret, self.info["secret"])

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.info["method"]

    def check_response_type(self, response_type):
        return False

    def check_grant_type(self, grant_type):
        return grant_type == "client_credentials"


class Token(TokenMixin):
    def __init__(self, client_id, scope, expires_in):
        self.client_id = client_id
        self.scope = scope
        self.expires_in = expires_in
        self.issued_at = time.time()
        self.revoked = False

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def is_expired(self):
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self):
        return self.revoked


def create_app(lifetime):
    app = Flask("alf-authlib")
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": lifetime}
    lock = threading.Lock()
    tokens = {}
    stats = {"token_requests": 0, "token_errors": 0, "resource_requests": 0, "resource_401": 0, "last_form": {}}

    def query_client(client_id):
        return Client(client_id) if client_id in CLIENTS else None

    def save_token(token, req):
        with lock:
            tokens[token["access_token"]] = Token(req.client.get_client_id(), token.get("scope", ""), token["expires_in"])

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)

    class ClientCredentials(grants.ClientCredentialsGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    server.register_grant(ClientCredentials)

    class Validator(BearerTokenValidator):
        def authenticate_token(self, token_string):
            with lock:
                return tokens.get(token_string)

    protect = ResourceProtector()
    protect.register_token_validator(Validator())

    @app.post("/oauth/token")
    def issue_token():
        form = request.form
        with lock:
            stats["token_requests"] += 1
            stats["last_form"] = {
                "grant_type": form.get("grant_type"),
                "scope": form.get("scope"),
                "audience": form.getlist("audience"),
                "resource": form.getlist("resource"),
                "content_type": request.content_type,
                "auth": "basic" if request.authorization else "post",
            }
        response = server.create_token_response()
        if response.status_code != 200:
            with lock:
                stats["token_errors"] += 1
        return response

    @app.route("/api/resource", methods=["GET", "POST"])
    def resource():
        with lock:
            stats["resource_requests"] += 1
        try:
            token = protect.acquire_token()
        except OAuth2Error as error:
            with lock:
                stats["resource_401"] += 1
            return json.dumps(dict(error.get_body())), error.status_code, error.get_headers()
        return jsonify(client_id=token.client_id, scope=token.scope, body=request.get_data(as_text=True))

    @app.post("/_revoke_all")
    def revoke_all():
        with lock:
            for t in tokens.values():
                t.revoked = True
        return jsonify(revoked=len(tokens))

    @app.get("/_stats")
    def get_stats():
        with lock:
            return jsonify(stats)

    return app


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lifetime", type=int, default=3600)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        # Authlib refuses plain http except on loopback addresses. The other addresses this test
        # server binds (10.42.0.1 in tests/tap.sh) are inside a private network namespace.
        os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    from werkzeug.serving import make_server

    srv = make_server(args.host, args.port, create_app(args.lifetime), threaded=True)
    print(f"ALF_AUTHLIB_READY {srv.server_port}", flush=True)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
