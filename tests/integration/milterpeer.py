"""A test milter on Debian's libmilter (python3-milter), driven by a JSON plan.

    /usr/bin/python3 milterpeer.py PORT|/SOCKET/PATH PLAN.json SEEN.jsonl

It records every event with the macros it was given (one JSON line each, in
SEEN.jsonl) and answers as PLAN says:
  {"connect": "continue", "helo": ..., "mail": ..., "rcpt": ..., "data": ...,
   "eom": "continue"|"accept"|"reject"|"tempfail"|"discard",
   "reply": ["550", "5.7.1", "text"],          # setreply before a reject/tempfail
   "edits": [["addheader", name, value], ["insheader", idx, name, value],
             ["chgheader", name, idx, value], ["addrcpt", addr],
             ["delrcpt", addr], ["chgfrom", addr], ["replacebody", text],
             ["quarantine", reason]]}
Only the stage named in "reply_at" uses "reply"; "sleep_at": stage (with
"sleep": seconds) answers that stage late.
"""
import json
import sys

import Milter

import time

SOCKET, PLAN, SEEN = sys.argv[1], sys.argv[2], sys.argv[3]
MACROS = ["j", "{daemon_name}", "{daemon_addr}", "v", "_", "i", "{auth_type}", "{auth_authen}",
          "{mail_addr}", "{rcpt_addr}", "{rcpt_mailer}", "{client_addr}", "{client_name}",
          "{tls_version}", "{cipher}", "{cipher_bits}"]


def plan():
    with open(PLAN) as f:
        return json.load(f)


def seen(event, **kw):
    with open(SEEN, "a") as f:
        f.write(json.dumps(dict(event=event, **kw)) + "\n")


WORDS = {"continue": Milter.CONTINUE, "accept": Milter.ACCEPT, "reject": Milter.REJECT,
         "tempfail": Milter.TEMPFAIL, "discard": Milter.DISCARD}


class TestMilter(Milter.Base):
    def __init__(self):
        self.plan = plan()

    def macros(self):
        out = {}
        for m in MACROS:
            v = self.getsymval(m)
            if v is not None:
                out[m] = v
        return out

    def answer(self, stage):
        if self.plan.get("sleep_at") == stage:
            time.sleep(self.plan.get("sleep", 5))  # a filter that does not answer in time
        word = self.plan.get(stage, "continue")
        if self.plan.get("reply_at") == stage and "reply" in self.plan:
            self.setreply(*self.plan["reply"])
        return WORDS[word]

    def connect(self, hostname, family, hostaddr):
        seen("connect", hostname=hostname, addr=hostaddr[0] if hostaddr else None,
             macros=self.macros())
        return self.answer("connect")

    def hello(self, heloname):
        seen("helo", helo=heloname, macros=self.macros())
        return self.answer("helo")

    def envfrom(self, f, *params):
        seen("mail", sender=f, params=list(params), macros=self.macros())
        return self.answer("mail")

    def envrcpt(self, to, *params):
        seen("rcpt", rcpt=to, params=list(params), macros=self.macros())
        return self.answer("rcpt")

    def data(self):
        seen("data", macros=self.macros())
        return self.answer("data")

    def header(self, name, value):
        seen("header", name=name, value=value)
        return Milter.CONTINUE

    def eoh(self):
        seen("eoh", macros=self.macros())
        return Milter.CONTINUE

    def body(self, chunk):
        seen("body", chunk=chunk.decode("latin-1"))
        return Milter.CONTINUE

    def eom(self):
        seen("eom", macros=self.macros())
        for e in self.plan.get("edits", []):
            op = e[0]
            if op == "addheader":
                self.addheader(e[1], e[2])
            elif op == "insheader":
                self.addheader(e[2], e[3], e[1])
            elif op == "chgheader":
                self.chgheader(e[1], e[2], e[3])
            elif op == "addrcpt":
                self.addrcpt(e[1])
            elif op == "delrcpt":
                self.delrcpt(e[1])
            elif op == "chgfrom":
                self.chgfrom(e[1])
            elif op == "replacebody":
                self.replacebody(e[1].encode())
            elif op == "quarantine":
                self.quarantine(e[1])
        return self.answer("eom")

    def abort(self):
        seen("abort")
        return Milter.CONTINUE

    def close(self):
        seen("close")
        return Milter.CONTINUE


if __name__ == "__main__":
    Milter.factory = TestMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY | Milter.ADDRCPT |
                     Milter.DELRCPT | Milter.CHGFROM | Milter.QUARANTINE)
    seen("ready")
    # A port number, or the path of a unix socket.
    where = "unix:" + SOCKET if SOCKET.startswith("/") else "inet:%s@127.0.0.1" % SOCKET
    Milter.runmilter("hongyan-test", where, 60)
