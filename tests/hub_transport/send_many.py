"""Sends N messages through an SMTP address over S parallel sessions with
Python's smtplib (a real client), killing a process after K acknowledged
messages. A message whose session is cut (or that gets a 4xx) is counted
and sent again in a new session, with the same Message-ID, until it is
acknowledged. Prints one JSON line: acknowledged ids, cut sessions,
retries, and new sessions that failed after the kill."""

import json
import os
import signal
import smtplib
import sys
import threading
import time

host, port = sys.argv[1], int(sys.argv[2])
total, sessions, kill_after, kill_pid = (int(a) for a in sys.argv[3:7])
tag = sys.argv[7]

lock = threading.Lock()
state = {"acked": [], "cut": 0, "retries": 0, "failed_new": 0, "failed_new_why": [],
         "killed": False, "gave_up": []}


def acked(i):
    with lock:
        state["acked"].append(i)
        if kill_pid > 0 and not state["killed"] and len(state["acked"]) >= kill_after:
            os.kill(kill_pid, signal.SIGKILL)
            state["killed"] = True


def connect():
    """A new session; failures after the kill are counted."""
    while True:
        try:
            s = smtplib.SMTP(host, port, timeout=60)
            code, msg = s.ehlo("client.example")
            if code != 250:
                raise smtplib.SMTPResponseException(code, msg)
            return s
        except (OSError, smtplib.SMTPException) as e:
            with lock:
                if state["killed"]:
                    state["failed_new"] += 1
                    state["failed_new_why"].append(repr(e))
            time.sleep(0.2)


def worker(n):
    mine = list(range(n, total, sessions))
    s = connect()
    for i in mine:
        rcpt = "alice@lab.com" if i % 2 == 0 else "bob@lab.com"
        msg = (f"From: carol@test.com\r\nTo: {rcpt}\r\nSubject: {tag}-{i:04d}\r\n"
               f"Message-ID: <{tag}-{i}@test.example>\r\n\r\nmessage {i}\r\n")
        for _attempt in range(20):
            try:
                s.sendmail("carol@test.com", [rcpt], msg)
                acked(i)
                break
            except (OSError, smtplib.SMTPException) as e:
                if _attempt == 19:
                    with lock:
                        state["gave_up"].append([i, repr(e)])
                with lock:
                    state["cut"] += 1
                    state["retries"] += 1
                try:
                    s.close()
                except Exception:
                    pass
                s = connect()
    try:
        s.quit()
    except Exception:
        pass


threads = [threading.Thread(target=worker, args=(n,)) for n in range(sessions)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(state), flush=True)
