#!/usr/bin/env python3
"""Figures for issue 20's before/after table (docs/architecture.md): SQL statements per module,
module dependency edges, and the longest functions.

Usage: python3 scripts/architecture-stats.py [N]     the figures (N longest functions, default 10)
       python3 scripts/architecture-stats.py --check  exit 1 when docs/architecture.md's table of module
                                                      edges differs from Package.swift's"""
import json, os, re, subprocess, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sources = os.path.join(root, "Sources")
SQL = re.compile(r'"(?:"")?\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WITH|REPLACE|PRAGMA|BEGIN|COMMIT|ATTACH|DETACH|SAVEPOINT|RELEASE|ROLLBACK)\b')

def swift_files(module):
    for dirpath, _, names in os.walk(os.path.join(sources, module)):
        for n in sorted(names):
            if n.endswith(".swift"):
                yield os.path.join(dirpath, n)

def functions(path):
    """(name, lines) of each func/init body, by brace matching outside strings and comments."""
    text = open(path, encoding="utf-8").read().split("\n")
    out = []
    for i, line in enumerate(text):
        m = re.match(r'\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|private|fileprivate|internal|package|static|final|override|mutating|nonisolated|@discardableResult|convenience|required)\s+)*(func\s+([^\s(<]+)|init[?!]?)\s*[(<]', line)
        if not m:
            continue
        depth, started, j = 0, False, i
        while j < len(text):
            s = re.sub(r'"(?:\\.|[^"\\])*"', '""', text[j].split("//")[0])
            for ch in s:
                if ch == "{": depth += 1; started = True
                elif ch == "}": depth -= 1
            if started and depth <= 0:
                break
            if not started and j > i + 8:
                break
            j += 1
        if started:
            out.append((m.group(2) or "init", j - i + 1))
    return out

def package_edges():
    dump = json.loads(subprocess.run(["swift", "package", "dump-package"], cwd=root, capture_output=True, text=True,
                                     check=True).stdout)
    edges = []
    for t in dump["targets"]:
        if t["type"] in ("regular", "system", "executable"):
            for d in t.get("dependencies", []):
                name = d.get("byName", d.get("target", d.get("product", [None])))[0]
                edges.append((t["name"], name))
    return edges


def documented_edges():
    """The table of docs/architecture.md: module → its dependencies ("every stage module" expanded by hand
    is not checked: MulanCommands' row is compared on the modules it names)."""
    rows = {}
    for line in open(os.path.join(root, "docs", "architecture.md"), encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("Mulan") and not cells[0].startswith("Mulan "):
            deps = [] if cells[1] == "(none)" else [d.strip() for d in cells[1].split(",")]
            rows[cells[0]] = deps
    return rows


if len(sys.argv) > 1 and sys.argv[1] == "--check":
    actual = {}
    for a, b in package_edges():
        actual.setdefault(a, set()).add(b)
    problems = []
    for mod, deps in documented_edges().items():
        real = actual.get(mod, set())
        named = {d for d in deps if d.startswith(("Mulan", "CMulan", "ArgumentParser"))}
        if mod == "MulanCommands":
            missing = named - real
            if missing:
                problems.append(f"{mod}: documented {sorted(missing)} but Package.swift lacks them")
        elif named != real:
            problems.append(f"{mod}: documented {sorted(named)}, Package.swift {sorted(real)}")
    library_modules = {a for a in actual if a.startswith("Mulan") and a != "MulanTestSupport"}
    for mod in sorted(library_modules - set(documented_edges())):
        problems.append(f"{mod} is not in docs/architecture.md")
    print("\n".join(problems) or "docs/architecture.md matches Package.swift")
    sys.exit(1 if problems else 0)

modules = sorted(d for d in os.listdir(sources) if os.path.isdir(os.path.join(sources, d)))
print("## SQL statements by module\n")
print("| module | SQL statements |\n|---|---:|")
total_outside = 0
for mod in modules:
    n = sum(len(SQL.findall(open(f, encoding="utf-8").read())) for f in swift_files(mod))
    if n:
        print(f"| {mod} | {n} |")
        if mod != "MulanCatalog":
            total_outside += n
print(f"\noutside MulanCatalog: {total_outside}\n")

edges = package_edges()
print(f"## Module edges (non-test targets): {len(edges)}\n")
for mod in sorted({a for a, _ in edges}):
    print(f"- {mod} → {', '.join(sorted(b for a, b in edges if a == mod))}")

print("\n## Longest functions\n")
allf = []
for mod in modules:
    for f in swift_files(mod):
        for name, n in functions(f):
            allf.append((n, os.path.relpath(f, root), name))
allf.sort(reverse=True)
print("| lines | function | file |\n|---:|---|---|")
for n, f, name in allf[: int(sys.argv[1]) if len(sys.argv) > 1 else 10]:
    print(f"| {n} | {name} | {f} |")
