#!/usr/bin/env python3
"""Check that every relative Markdown link and #anchor in the given files resolves (GitHub slugs)."""
import os, re, sys

LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^\s*```')

def slug(heading):
    h = heading.strip().lower()
    h = re.sub(r'[^\w\- ]', '', h)   # drop punctuation (keeps letters, digits, _, -, space)
    return h.replace(' ', '-')

def anchors(path):
    out, seen, fenced = set(), {}, False
    for line in open(path, encoding='utf-8'):
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = re.match(r'^(#{1,6})\s+(.*?)\s*#*\s*$', line)
        if m and not fenced:
            s = slug(m.group(2))
            n = seen.get(s, 0)
            out.add(s if n == 0 else f'{s}-{n}')
            seen[s] = n + 1
    return out

bad = 0
for f in sys.argv[1:]:
    fenced = False
    for no, line in enumerate(open(f, encoding='utf-8'), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        for target in LINK.findall(line):
            if re.match(r'^[a-z]+:', target):
                continue
            path, _, frag = target.partition('#')
            dest = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
            if not os.path.exists(dest):
                print(f'{f}:{no}: missing file {target}'); bad += 1
            elif frag and dest.endswith('.md') and frag not in anchors(dest):
                print(f'{f}:{no}: missing anchor {target}'); bad += 1
print(f'{bad} broken link(s)')
sys.exit(1 if bad else 0)
