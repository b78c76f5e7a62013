"""Real SMTP peers for outbound tests: aiosmtpd servers on loopback that
count connections, keep what they receive, answer chosen recipients with
chosen replies, and optionally require STARTTLS and AUTH (PLAIN/LOGIN) or
speak TLS from the first byte (wrapper mode, port 465 style).

    with Peer() as mx:                        # plain MX on a random port
        ...; assert mx.messages[0].rcpt_tos == ["bob@example.net"]
    with Peer(tls=True, require_starttls=True, users={"api-key": "secret"}) as relay:
        ...; assert relay.auth_ok == ["api-key"]
"""
import asyncio
import datetime
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from conftest import free_port


def make_cert(directory, name="relay.test"):
    """A self-signed certificate for name (and 127.0.0.1); returns (cert, key) paths."""
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path = directory / ("%s.crt" % name)
    key_path = directory / ("%s.key" % name)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Message:
    def __init__(self, mail_from, mail_options, rcpt_tos, rcpt_options, data):
        self.mail_from = mail_from
        self.mail_options = mail_options
        self.rcpt_tos = rcpt_tos
        self.rcpt_options = rcpt_options
        self.data = data


class _Handler:
    def __init__(self, peer):
        self.peer = peer

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        if self.peer.ehlo_delay:
            await asyncio.sleep(self.peer.ehlo_delay)  # a slow server: connection setup time
        if self.peer.ehlo_reply:
            return [self.peer.ehlo_reply]  # e.g. a 502: the client must fall back to HELO
        session.host_name = hostname
        with self.peer.lock:
            self.peer.ehlo_names.append(hostname)
        if self.peer.pipelining:
            # aiosmtpd reads pipelined commands fine; it just does not say so.
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.peer.lock:
            self.peer.mail_froms.append((address, list(mail_options)))
        if self.peer.mail_reply:
            return self.peer.mail_reply  # e.g. a 451 for everything
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.peer.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        self.peer.rcpt_options.append(list(rcpt_options))
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        if self.peer.data_delay:
            await asyncio.sleep(self.peer.data_delay)  # a slow server: transmission time
        if self.peer.data_reply:
            return self.peer.data_reply
        with self.peer.lock:
            self.peer.messages.append(Message(envelope.mail_from, list(envelope.mail_options),
                                              list(envelope.rcpt_tos), [], envelope.content))
        return "250 2.0.0 Ok: queued as P%d" % len(self.peer.messages)


class _CountingSMTP(SMTP):
    def __init__(self, peer, *args, **kwargs):
        self._peer = peer
        super().__init__(*args, **kwargs)

    def connection_made(self, transport):
        with self._peer.lock:
            self._peer.connections += 1
        super().connection_made(transport)

    async def smtp_RSET(self, arg):
        with self._peer.lock:
            self._peer.rsets += 1
        if self._peer.rset_reply:
            # A server that went away while the connection sat idle in a cache.
            await self.push(self._peer.rset_reply)
            self.transport.close()
            return
        await super().smtp_RSET(arg)


class Peer:
    """An aiosmtpd server in a thread; see the module docstring."""

    def __init__(self, tmp=None, tls=False, require_starttls=False, wrapper=False, users=None,
                 hostname="127.0.0.1", port=None, name="relay.test", exclude_mechanisms=None,
                 pipelining=False, ehlo_reply=None, broken_tls=False, size_limit=None,
                 smtputf8=True, ehlo_delay=0, data_delay=0, rset_reply=None):
        self.lock = threading.Lock()
        self.rsets = 0  # RSET commands received
        self.rset_reply = rset_reply  # e.g. a 421: answered, then the connection is closed
        self.ehlo_delay = ehlo_delay
        self.data_delay = data_delay
        self.messages = []
        self.rcpt_options = []
        self.connections = 0
        self.rcpt_replies = {}
        self.data_reply = None
        self.mail_reply = None
        self.pipelining = pipelining
        self.ehlo_reply = ehlo_reply
        self.ehlo_names = []
        self.mail_froms = []
        self.auth_ok = []
        self.auth_failed = []
        self.users = users
        self.port = port or free_port()
        self.host = hostname
        kwargs = {}
        self.context = None
        if tls or wrapper:
            cert, key = make_cert(tmp, name)
            self.cert = cert
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert), str(key))
            if broken_tls:
                # Offers STARTTLS, then fails every handshake: TLS 1.2 with a
                # client certificate required (the alert comes in the handshake).
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(str(cert))
            self.context = ctx
            if tls:
                kwargs["tls_context"] = ctx
                kwargs["require_starttls"] = require_starttls
        if users is not None:
            kwargs["authenticator"] = self._auth
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = bool(tls)
        if exclude_mechanisms:
            kwargs["auth_exclude_mechanism"] = list(exclude_mechanisms)
        if size_limit is not None:
            kwargs["data_size_limit"] = size_limit  # announced as SIZE n
        kwargs["enable_SMTPUTF8"] = smtputf8  # False: a peer that does not offer SMTPUTF8
        peer = self

        class _Controller(Controller):
            def factory(self):
                return _CountingSMTP(peer, self.handler, **self.SMTP_kwargs)

        self.controller = _Controller(_Handler(self), hostname=hostname, port=self.port,
                                      ssl_context=self.context if wrapper else None,
                                      server_hostname=name, **kwargs)

    def _auth(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode()
        ok = self.users.get(user) == auth_data.password.decode()
        with self.lock:
            (self.auth_ok if ok else self.auth_failed).append((user, mechanism))
        # handled=False: aiosmtpd sends the 535 itself.
        return AuthResult(success=ok, handled=ok)

    def start(self):
        self.controller.start()
        # Controller.start() connects once to check the server is up.
        with self.lock:
            self._baseline = self.connections
        return self

    @property
    def connections_after_start(self):
        """Connections made by others since start()."""
        with self.lock:
            return self.connections - self._baseline

    def stop(self):
        self.controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
