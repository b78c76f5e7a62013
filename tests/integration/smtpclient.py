"""A raw SMTP client for tests that need byte-level control (pipelining in
one packet, smuggling sequences, STARTTLS injection): send bytes, read whole
replies. Every read is bounded by the socket timeout."""
import socket
import ssl


def insecure_tls_context():
    """A client context that accepts the server's self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RawClient:
    def __init__(self, port, timeout=15, implicit_tls=False, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if implicit_tls:
            self.sock = insecure_tls_context().wrap_socket(self.sock,
                                                           server_hostname="mx.example.com")
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """One reply: (code, text of the last line, all lines)."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return int(lines[-1][:3]), lines[-1][4:], lines

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def ehlo(self, name="client.example"):
        code, _, lines = self.cmd("EHLO " + name)
        assert code == 250, lines
        return [l[4:] for l in lines[1:]]

    def starttls(self):
        code, text, _ = self.cmd("STARTTLS")
        assert code == 220, text
        assert self.buf == b"", "the server answered beyond STARTTLS: %r" % self.buf
        self.sock = insecure_tls_context().wrap_socket(self.sock,
                                                       server_hostname="mx.example.com")

    def closed(self):
        """True when the server closed the connection (reads until EOF or a
        reset); False when it is still open when the timeout runs out."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self):
        self.sock.close()
