"""A private PostgreSQL 15 cluster for tests: initdb and pg_ctl as the
`postgres` user, in a temporary directory, on a random loopback port; TCP
logins need a password (scram-sha-256), as a real set-up does."""
import os
import pathlib
import shutil
import subprocess
import tempfile

from conftest import free_port

PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")


def available():
    return (PG_BIN / "initdb").exists() and shutil.which("runuser") is not None and \
        os.geteuid() == 0


class PgServer:
    def __init__(self):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="hongyan-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_pg([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                    "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                    "--no-instructions"])
        self.start()

    def as_pg(self, args, input=None, check=True):
        return subprocess.run(["runuser", "-u", "postgres", "--"] + args, input=input,
                              capture_output=True, text=True, check=check, timeout=120)

    def start(self):
        for _ in range(3):
            # Every statement is logged: tests count what the database was asked.
            opts = ("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c log_statement=all" % (self.port, self.dir))
            r = self.as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                            str(self.dir / "log"), "-w", "-t", "60", "start"], check=False)
            if r.returncode == 0:
                return
            self.port = free_port()  # someone took the port: pick another
        raise RuntimeError("pg_ctl start failed: " + r.stdout + r.stderr +
                           (self.dir / "log").read_text(errors="replace"))

    def stop(self):
        self.as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                   check=False)

    def psql(self, sql, db="postgres"):
        r = self.as_pg(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir), "-p",
                        str(self.port), "-U", "postgres", "-d", db], input=sql)
        return r.stdout

    def statements(self, needle):
        """How many statements containing needle the server has logged (log_statement = all)."""
        text = (self.dir / "log").read_text(errors="replace")
        return sum(1 for line in text.splitlines() if ("statement: " in line or "execute " in line) and needle in line)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


MAIL_SCHEMA = """
CREATE ROLE mail LOGIN PASSWORD 'mail-secret';
CREATE DATABASE mail OWNER mail;
\\c mail
SET ROLE mail;
CREATE TABLE mailbox (username text PRIMARY KEY, maildir text NOT NULL,
                      active boolean NOT NULL DEFAULT true);
CREATE TABLE alias (address text NOT NULL, goto text NOT NULL);
CREATE TABLE domain (domain text PRIMARY KEY);
"""


def table_file(path, pg, query, **extra):
    lines = ["hosts = 127.0.0.1:%d" % pg.port, "user = mail", "password = mail-secret",
             "dbname = mail", "query = " + query]
    lines += ["%s = %s" % kv for kv in extra.items()]
    path.write_text("# pgsql_table(5)\n" + "\n".join(lines) + "\n")
    # As a real site keeps it: the password readable by the mail_owner group only.
    os.chmod(path, 0o640)
    if os.geteuid() == 0:
        shutil.chown(path, "root", "hongyan")
    return path
