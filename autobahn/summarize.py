#!/usr/bin/env python3
"""Turns an Autobahn|Testsuite index.json (as kosoku writes it) into one part of autobahn/RESULTS.md:
counts per section and per behaviour, and every case that is not OK / NON-STRICT / INFORMATIONAL by
name. Usage: summarize.py server|client RESULTS.md INDEX.json... (the indexes of one mode's runs are
merged; the other mode's part of RESULTS.md is kept)."""
import contextlib
import io
import json
import os
import re
import sys
from collections import Counter, defaultdict

ACCEPTED = {"OK", "NON-STRICT", "INFORMATIONAL"}
SECTIONS = {
    "1": "Framing", "2": "Pings/Pongs", "3": "Reserved bits", "4": "Opcodes", "5": "Fragmentation",
    "6": "UTF-8 handling", "7": "Close handling", "9": "Limits/performance", "10": "Misc",
    "12": "permessage-deflate (payloads)", "13": "permessage-deflate (parameters)",
}


def key(case_id):
    return [int(p) for p in case_id.split(".")]


# Why a case is not OK, where ferrio's behaviour is a known, accepted one.
NOTES = {
    "6.4.3": "invalid UTF-8 in the middle of one frame that arrives in pieces: the frame is checked once it is "
    "whole (fragments are checked one by one, so 6.4.1/6.4.2 fail fast and are OK)",
    "6.4.4": "as 6.4.3",
}


def describe(entry):
    try:
        case = json.load(open(os.path.join(entry["_dir"], entry["reportfile"])))
    except OSError:
        return ""
    text = re.sub(r"<[^>]+>", " ", case.get("description", ""))
    return " ".join(text.split())[:160]


HEADERS = {
    "server": [
        "# Autobahn|Testsuite, server cases, against ferrio's websocket layer\n",
        "Written by `autobahn/run.sh` (kosoku, the Autobahn cases in Python, driving",
        "`crates/ferrio/examples/ws_echo.rs` built in release). Behaviour is the case's verdict on the",
        "protocol; close behaviour is its verdict on the closing handshake.",
    ],
    "client": [
        "# Autobahn|Testsuite, client cases, against ferrio-client's websocket\n",
        "Written by `autobahn/run.sh client` (kosoku as the fuzzing server, driven by",
        "`crates/ferrio-client/examples/ws_autobahn_client.rs` built in release, which offers",
        "permessage-deflate as the client does by default, with threshold 0; cases 13.2, 13.5 and 13.6,",
        "whose server accepts only offers with `client_no_context_takeover`, in a second run whose offer",
        "adds it). Behaviour is the case's verdict on the protocol; close behaviour is its verdict on the",
        "closing handshake.",
    ],
}


def summary(mode, paths):
    index = {}
    for path in paths:
        for agent, cases in json.load(open(path)).items():
            for c in cases.values():
                c["_dir"] = os.path.dirname(path)
            index.setdefault(agent, {}).update(cases)
    for line in HEADERS[mode]:
        print(line)
    try:
        from importlib.metadata import version
        print(f"kosoku {version('kosoku')}.\n")
    except Exception:
        print()
    for agent, cases in index.items():
        per_section = defaultdict(Counter)
        close = Counter()
        total = Counter()
        bad = []
        for cid in sorted(cases, key=key):
            c = cases[cid]
            sec = cid.split(".")[0]
            per_section[sec][c["behavior"]] += 1
            total[c["behavior"]] += 1
            close[c["behaviorClose"]] += 1
            if c["behavior"] not in ACCEPTED or c["behaviorClose"] not in ACCEPTED | {"UNIMPLEMENTED"}:
                bad.append((cid, c["behavior"], c["behaviorClose"], c.get("remoteCloseCode")))
        behaviours = sorted(total)
        print(f"{sum(total.values())} cases.\n")
        print("| section | " + " | ".join(behaviours) + " |")
        print("|---|" + "---|" * len(behaviours))
        for sec in sorted(per_section, key=int):
            name = SECTIONS.get(sec, "")
            row = " | ".join(str(per_section[sec][b]) for b in behaviours)
            print(f"| {sec} {name} | {row} |")
        print("| **all** | " + " | ".join(f"**{total[b]}**" for b in behaviours) + " |\n")
        print("Close behaviour: " + ", ".join(f"{k} {v}" for k, v in sorted(close.items())) + ".\n")
        if bad:
            print("Cases not OK / NON-STRICT / INFORMATIONAL:\n")
            for cid, b, bc, code in bad:
                print(f"- {cid}: {b} (close {bc}, remote close code {code})")
        else:
            print("Every case is OK, NON-STRICT or INFORMATIONAL.")
        others = [cid for cid in sorted(cases, key=key)
                  if cases[cid]["behavior"] != "OK" or cases[cid]["behaviorClose"] != "OK"]
        if others:
            print("\nThe cases that are not plain OK:\n")
            for cid in others:
                c = cases[cid]
                note = NOTES.get(cid, "")
                print(f"- {cid} {c['behavior']} / close {c['behaviorClose']} (close code {c['remoteCloseCode']}): "
                      f"{describe(c)}" + (f" — {note}" if note else ""))


def main(mode, results, paths):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        summary(mode, paths)
    parts = {}
    try:
        text = open(results).read()
    except OSError:
        text = ""
    for m in HEADERS:
        start, end = f"<!-- {m} -->\n", f"<!-- /{m} -->\n"
        if start in text and end in text:
            parts[m] = text[text.index(start) + len(start):text.index(end)]
    if not parts and text:
        # A file from before the client table: all of it is the server's part.
        parts["server"] = text
    parts[mode] = out.getvalue()
    with open(results, "w") as f:
        for m in HEADERS:
            if m in parts:
                f.write(f"<!-- {m} -->\n{parts[m].rstrip()}\n<!-- /{m} -->\n")
                if m != list(HEADERS)[-1] and len(parts) > 1:
                    f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
