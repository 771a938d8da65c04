#!/usr/bin/env python3
"""Self cost per function from a callgrind file, and the callers of chosen functions.

  callgrind_self.py CALLGRIND_FILE [FUNCTION_SUBSTRING...]

Prints the total, the 30 functions with the most instructions of their own, and
for each FUNCTION_SUBSTRING the callers of the matching functions with the
instructions spent in those calls. (callgrind_annotate 3.19 attributed every
instruction to `clone` in dumps taken after `callgrind_control --zero`.) Under
valgrind a `rep movsb` counts one instruction per byte, so memcpy's figure is
about the number of bytes copied.
"""
import re, sys, collections
path = sys.argv[1]; want = sys.argv[2:]  # substrings of functions whose callers to show
names = {}; obnames = {}
selfc = collections.Counter(); callc = collections.defaultdict(collections.Counter)
fn = None; ob = None; cfn = None; pending_call = False
def name(tag, text, table):
    m = re.match(r'\((\d+)\)(?: (.*))?', text)
    if not m: return text
    if m.group(2): table[m.group(1)] = m.group(2)
    return table.get(m.group(1), text)
for line in open(path):
    line = line.rstrip('\n')
    if line.startswith('fn='): fn = name('fn', line[3:], names); continue
    if line.startswith('cfn='): cfn = name('fn', line[4:], names); continue
    if line.startswith(('ob=', 'fl=', 'fi=', 'fe=', 'cob=', 'cfi=', 'cfl=')):
        if line.startswith('ob='): ob = name('ob', line[3:], obnames)
        elif line.startswith('cob='): name('ob', line[4:], obnames)
        continue
    if line.startswith('calls='): pending_call = True; continue
    if line and (line[0].isdigit() or line[0] in '+-*'):
        parts = line.split()
        if len(parts) < 2: continue
        cost = int(parts[1])
        if pending_call:
            callc[cfn][fn] += cost; pending_call = False
        else:
            selfc[fn] += cost
total = sum(selfc.values())
print(f"total {total:,}")
for f, c in selfc.most_common(30):
    print(f"{c:>14,} {100*c/total:5.1f}%  {f[:110]}")
for w in want:
    for f in [f for f in callc if w in f]:
        print(f"\ncallers of {f} (inclusive cost of the calls):")
        for g, c in callc[f].most_common(12): print(f"{c:>14,}  {g[:110]}")
