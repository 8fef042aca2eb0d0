#!/usr/bin/env python3
"""Writes the built-in library's keywords and keyword-less patterns for hsbench.

keywords.txt: every rule keyword, lower-cased (what redactd's keyword
automaton holds, including the `name=` keywords of field-name rules).
patterns.txt: the patterns of rules without keywords that Hyperscan parses
(the derived JSON member forms of field-name rules are left out).
"""
import glob, re, sys, tomllib

rules_dir = sys.argv[1] if len(sys.argv) > 1 else "rules"
out_dir = sys.argv[2] if len(sys.argv) > 2 else "."
kws, pats = set(), []
for f in sorted(glob.glob(f"{rules_dir}/*.toml")):
    with open(f, "rb") as fh:
        doc = tomllib.load(fh)
    for r in doc.get("rules", []):
        if r.get("enabled", True) is False:
            continue
        for k in r.get("keywords", []):
            kws.add(k.lower())
        if r.get("keys") and not r.get("pattern"):
            for k in r["keys"]:
                parts = [p for p in re.split(r"[*\-_. ]", k) if p]
                if parts:
                    kws.add(parts[-1].lower() + "=")
        elif not r.get("keywords") and r.get("pattern"):
            pats.append(r["pattern"])
with open(f"{out_dir}/keywords.txt", "w") as fh:
    fh.write("\n".join(sorted(kws)) + "\n")
with open(f"{out_dir}/patterns.txt", "w") as fh:
    fh.write("\n".join(pats) + "\n")
print(f"{len(kws)} keywords, {len(pats)} patterns", file=sys.stderr)
