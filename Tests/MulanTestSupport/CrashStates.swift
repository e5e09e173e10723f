import Foundation

/// Power-loss crash states, in the spirit of ALICE and SQLite's crash tests.
///
/// A stage runs on a copy of a prepared folder under `strace -f -y`, killed at the entry of the
/// K-th call of one system call in one of its threads (`-e inject=SYSCALL:signal=KILL:when=K`), or
/// not killed at all (the power goes after the stage has exited). That is a real process-death
/// state, plus the trace of every file-system call up to the death. From the trace, the checker
/// knows for every file its length at its last `fsync` and for every create, rename, unlink, mkdir
/// and symlink whether its folder was synced afterwards, and builds the states a power cut could
/// leave (`Variant`): unsynced data dropped (the file cut to its last synced length) or torn (cut
/// half-way), and unsynced names undone (in reverse order: a rename moved back, a created file or
/// folder removed, a file that existed before the run and was unlinked or replaced restored from
/// the prepared folder). Each state is applied to a copy of the killed folder; the stage's checks
/// run on it as the power cut left it, the stage runs again, and the checks, the exit status and
/// the result (compared with an uninterrupted run's) are judged after that.
///
/// What the model cannot do, and so leaves as written: overwrites inside a file's synced length
/// (SQLite's database pages written during a checkpoint; the WAL still holds them), the content of
/// a file created during the run and then unlinked or replaced without a folder sync (it stays
/// gone), and SQLite's `-shm` (treated as any file: cut to its synced length, which SQLite rebuilds).
///
/// `MULAN_CRASH_POINTS` sets how many kill points a check tries, the after-exit point included (2
/// in `make test`; each gives the 4 `Variant`s); `bench/crash-states.sh` asks for 50 (200 states per
/// stage).
public enum CrashStates {
    public struct ToolMissing: Error, CustomStringConvertible {
        public var description: String
    }

    /// The strace executable; an error that says what to install when it is missing.
    public static func strace() throws -> String {
        for dir in ["/usr/bin", "/bin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/strace") {
            return dir + "/strace"
        }
        throw ToolMissing(description: "strace is not installed, and the crash-state tests need it to record the stage's "
                          + "file-system calls: apt-get install strace (scripts/setup.sh installs it)")
    }

    public static var points: Int {
        max(1, Int(ProcessInfo.processInfo.environment["MULAN_CRASH_POINTS"] ?? "") ?? 2)
    }

    /// Where the stage dies: at the `when`-th call of `syscall` in one thread, or (nil) after it exited.
    public struct Point: Sendable, CustomStringConvertible {
        public var syscall: String?
        public var when: Int
        public var description: String { syscall.map { "\($0)#\(when)" } ?? "after exit" }
    }

    /// The state a power cut leaves, derived from a process-death state and its trace.
    public enum Variant: String, CaseIterable, Sendable {
        /// The folder as the killed process left it (page cache intact: what `kill -9` leaves).
        case processDeath = "process-death"
        /// Every file cut to its length at its last fsync (writes since then lost); names kept, as
        /// a file system that journals names but not data may leave them.
        case dataDropped = "data-dropped"
        /// Every file cut half-way between its synced and its written length (a torn write).
        case dataTorn = "data-torn"
        /// Data dropped, and every create, rename, unlink, mkdir and symlink not followed by a sync
        /// of its folder undone.
        case namesUndone = "names-undone"
    }

    /// One state's outcome.
    public struct Outcome: Sendable {
        public var point: Point
        public var variant: Variant
        public var violations: [String]
        /// Files cut and names undone to make the state from the process-death state.
        public var filesCut: Int
        public var namesUndone: Int
    }

    /// The system calls recorded, and those a kill point is drawn from.
    static let traced = "open,openat,creat,write,writev,pwrite64,pwritev,pwritev2,lseek,ftruncate,fsync,fdatasync,"
        + "rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,rmdir,symlink,symlinkat,link,linkat"
    /// In turn: the moments just before a sync or a rename hold the most unsynced work.
    public static let killOn = ["fsync", "rename", "write", "pwrite64", "unlink", "openat", "fdatasync", "mkdir", "renameat2"]

    /// A stage under test: `command(root)` runs it on a folder prepared like `initial` (returns the
    /// program, its arguments and the working folder); `check(root, afterRerun)` lists violated
    /// invariants; `result(root)` is what an uninterrupted run must equal after the re-run.
    public struct Stage {
        public var name: String
        public var initial: String
        public var command: (String) -> (program: String, arguments: [String], cwd: String)
        public var environment: [String: String]
        public var check: (String, Bool) throws -> [String]
        public var result: (String) throws -> [String: Data]

        public init(name: String, initial: String, environment: [String: String] = [:],
                    command: @escaping (String) -> (program: String, arguments: [String], cwd: String),
                    check: @escaping (String, Bool) throws -> [String], result: @escaping (String) throws -> [String: Data]) {
            self.name = name
            self.initial = initial
            self.environment = environment
            self.command = command
            self.check = check
            self.result = result
        }
    }

    /// Runs the stage uninterrupted (the reference), then `points` kill points spread over the
    /// traced run's calls plus the after-exit point, each turned into every variant. Returns every
    /// state's outcome. Throws when strace is missing or the reference run fails.
    ///
    /// Every run happens at one path, `scratch/run` (the killed run, and each state copied back there
    /// for its re-run), since stages record absolute paths (a text file's path names its load).
    public static func run(_ stage: Stage, points: Int = CrashStates.points, variants: [Variant] = Variant.allCases,
                           scratch: String, seed: UInt64 = 20_261_206) throws -> [Outcome] {
        let strace = try strace()
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let env = ProcessInfo.processInfo.environment.merging(stage.environment.merging(["MULAN_PROGRESS_INTERVAL": "0"]) { $1 }) { $1 }
        let run = scratch + "/run"
        // The reference, without strace.
        try copy(stage.initial, to: run)
        let (p, a, c) = stage.command(run)
        let r = try TestProcess.run(p, a, cwd: c, environment: env)
        guard r.status == 0 else { throw ToolMissing(description: "the \(stage.name) reference run failed (\(r.status)): \(r.stderr)") }
        let expected = try stage.result(run)
        // A traced run, to know how many calls of each kind a thread makes; it is also the
        // after-exit point's process-death state.
        try copy(stage.initial, to: run)
        let fullTrace = try traceRun(strace, stage, root: run, environment: env, inject: nil)
        guard fullTrace.status == 0 else {
            throw ToolMissing(description: "the \(stage.name) run under strace failed (\(fullTrace.status)); "
                              + "ptrace may be forbidden here (a container without CAP_SYS_PTRACE?): \(fullTrace.stderr)")
        }
        var perThread: [String: [Int: Int]] = [:]
        for event in parse(fullTrace.trace) { perThread[event.name, default: [:]][event.pid, default: 0] += 1 }
        let candidates = killOn.compactMap { s in perThread[s]?.values.max().map { (s, $0) } }
        guard !candidates.isEmpty else { throw ToolMissing(description: "the \(stage.name) trace holds no file-system call") }
        // Kill points: syscalls in turn, K spread over 1...max in strata with a seeded position.
        var state = seed ^ stage.name.utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 }
        var chosen: [Point] = [Point(syscall: nil, when: 0)]
        for k in 0..<max(0, points - 1) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let u = Double(state >> 11) / Double(1 << 53)
            // A call made only a few times (one `rename`, two `write`s in a thread) runs out of
            // unused K: the draw moves on to the next call that still has one, so that every kill
            // point, and so every state, is a distinct one.
            var c = k % candidates.count, moved = 0
            while chosen.filter({ $0.syscall == candidates[c].0 }).count >= candidates[c].1 && moved < candidates.count {
                c = (c + 1) % candidates.count
                moved += 1
            }
            if moved == candidates.count { break }  // every call of every kind is a kill point already
            let (s, n) = candidates[c]
            let slot = k / candidates.count, slots = (points - 1 + candidates.count - 1) / candidates.count
            var when = min(n, max(1, 1 + Int((Double(slot) + u) / Double(max(1, slots)) * Double(n - 1))))
            // A point already chosen moves to the next unused K of that call.
            var tries = 0
            while chosen.contains(where: { $0.syscall == s && $0.when == when }) && tries < n {
                when = when % n + 1
                tries += 1
            }
            chosen.append(Point(syscall: s, when: when))
        }
        let killed = scratch + "/killed"
        var outcomes: [Outcome] = []
        for point in chosen {
            let trace: String
            if point.syscall == nil {
                trace = fullTrace.trace
            } else {
                try copy(stage.initial, to: run)
                trace = try traceRun(strace, stage, root: run, environment: env, inject: point).trace
            }
            try? FileManager.default.removeItem(atPath: killed)
            try FileManager.default.moveItem(atPath: run, toPath: killed)
            let model = Model(trace: parse(trace), root: real(scratch) + "/run", initial: real(stage.initial),
                              now: real(killed))
            for variant in variants {
                try copy(killed, to: run)
                var violations: [String] = []
                let (cut, undone) = try model.apply(variant, to: real(run))
                violations += try stage.check(run, false).map { "as the power cut left it: " + $0 }
                let (p, a, c) = stage.command(run)
                let rerun = try TestProcess.run(p, a, cwd: c, environment: env)
                if rerun.status != 0 {
                    violations.append("the re-run exited \(rerun.status): \(rerun.stderr.prefix(400))")
                } else {
                    violations += try stage.check(run, true).map { "after the re-run: " + $0 }
                    let got = try stage.result(run)
                    if got != expected {
                        let differ = Set(got.keys).union(expected.keys).filter { got[$0] != expected[$0] }.sorted()
                        violations.append("the re-run's result differs from the uninterrupted run's: "
                                          + differ.prefix(5).joined(separator: ", "))
                    }
                }
                outcomes.append(Outcome(point: point, variant: variant, violations: violations, filesCut: cut,
                                        namesUndone: undone))
            }
        }
        if ProcessInfo.processInfo.environment["MULAN_KEEP_TEST_FILES"] != "1" {
            try? FileManager.default.removeItem(atPath: run)
            try? FileManager.default.removeItem(atPath: killed)
        }
        return outcomes
    }

    /// Appends one JSON line per state to `MULAN_CRASH_REPORT`, when set.
    public static func record(stage: String, _ outcomes: [Outcome], seconds: Double) {
        guard let path = ProcessInfo.processInfo.environment["MULAN_CRASH_REPORT"], !path.isEmpty else { return }
        var text = ""
        for o in outcomes {
            let line: [String: Any] = ["stage": stage, "point": o.point.description, "variant": o.variant.rawValue,
                                       "violations": o.violations, "files_cut": o.filesCut, "names_undone": o.namesUndone]
            if let d = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]) {
                text += String(decoding: d, as: UTF8.self) + "\n"
            }
        }
        let summary: [String: Any] = ["stage": stage, "summary": true, "states": outcomes.count,
                                      "violating_states": outcomes.filter { !$0.violations.isEmpty }.count,
                                      "seconds": (seconds * 10).rounded() / 10]
        if let d = try? JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]) {
            text += String(decoding: d, as: UTF8.self) + "\n"
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = Data(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    // MARK: - Running under strace

    static func traceRun(_ strace: String, _ stage: Stage, root: String, environment: [String: String],
                         inject: Point?) throws -> (status: Int32, trace: String, stderr: String) {
        let (program, arguments, cwd) = stage.command(root)
        let traceFile = root + ".strace"
        var args = ["-f", "-y", "-qq", "-s", "0", "-o", traceFile, "-e", "trace=" + traced]
        if let inject, let s = inject.syscall { args += ["-e", "inject=\(s):signal=KILL:when=\(inject.when)"] }
        let r = try TestProcess.run(strace, args + ["--", program] + arguments, cwd: cwd, environment: environment)
        let trace = (try? String(contentsOfFile: traceFile, encoding: .utf8)) ?? ""
        if ProcessInfo.processInfo.environment["MULAN_KEEP_TEST_FILES"] != "1" { try? FileManager.default.removeItem(atPath: traceFile) }
        return (r.status, trace, r.stderr)
    }

    static func copy(_ from: String, to: String) throws {
        if FileManager.default.fileExists(atPath: to) { try FileManager.default.removeItem(atPath: to) }
        let r = try TestProcess.run("cp", ["-a", from, to])
        guard r.status == 0 else { throw ToolMissing(description: "cp -a \(from) \(to) failed: \(r.stderr)") }
    }

    public static func real(_ path: String) -> String {
        guard let p = realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }

    // MARK: - The trace

    /// One completed system call: its name, the thread, the arguments as written, the result.
    struct Event {
        var pid: Int
        var name: String
        var args: String
        var result: Int?
        var resultPath: String?
    }

    /// Parses `strace -f -y` output, joining `<unfinished ...>` and `<... resumed>` halves.
    static func parse(_ text: String) -> [Event] {
        var events: [Event] = []
        var pending: [Int: (String, String)] = [:]
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = String(raw)
            guard let space = line.firstIndex(of: " "), let pid = Int(line[..<space]) else { continue }
            var rest = String(line[line.index(after: space)...]).trimmingCharacters(in: .whitespaces)
            if rest.hasPrefix("---") || rest.hasPrefix("+++") { continue }
            if rest.hasSuffix("<unfinished ...>") {
                guard let paren = rest.firstIndex(of: "(") else { continue }
                let name = String(rest[..<paren])
                pending[pid] = (name, String(rest[rest.index(after: paren)...].dropLast("<unfinished ...>".count)))
                continue
            }
            var name: String
            var args: String
            if rest.hasPrefix("<... ") {
                guard let (n, head) = pending.removeValue(forKey: pid), let close = rest.range(of: " resumed>") else { continue }
                name = n
                rest = String(rest[close.upperBound...])
                args = head + rest
            } else {
                guard let paren = rest.firstIndex(of: "(") else { continue }
                name = String(rest[..<paren])
                args = String(rest[rest.index(after: paren)...])
            }
            // Split "ARGS)   = RESULT" (strace pads short calls to a column before the "=").
            guard let eq = args.range(of: " = ", options: .backwards) else { continue }
            let result = String(args[eq.upperBound...])
            args = String(args[..<eq.lowerBound])
            while args.last == " " { args.removeLast() }
            guard args.last == ")" else { continue }
            args.removeLast()
            let number = result.prefix { $0 == "-" || $0.isNumber }
            var resultPath: String?
            if let lt = result.firstIndex(of: "<"), let gt = result.lastIndex(of: ">"), lt < gt {
                resultPath = String(result[result.index(after: lt)..<gt])
            }
            events.append(Event(pid: pid, name: name, args: args, result: Int(number), resultPath: resultPath))
        }
        return events
    }

    /// The `N</path>` descriptors and `"…"` strings of an argument list, in order.
    static func fields(_ args: String) -> (fds: [(Int?, String)], strings: [String], numbers: [Int]) {
        var fds: [(Int?, String)] = []
        var strings: [String] = []
        var numbers: [Int] = []
        let chars = Array(args)
        var i = 0
        var token = ""
        func flushToken() {
            let t = token.trimmingCharacters(in: .whitespaces)
            if let n = Int(t) { numbers.append(n) }
            token = ""
        }
        while i < chars.count {
            let c = chars[i]
            if c == "\"" {
                var s = ""
                i += 1
                while i < chars.count && chars[i] != "\"" {
                    if chars[i] == "\\" && i + 1 < chars.count { s.append(chars[i]); i += 1 }
                    s.append(chars[i])
                    i += 1
                }
                strings.append(s)
                token = ""
            } else if c == "<" {
                var s = ""
                i += 1
                while i < chars.count && chars[i] != ">" { s.append(chars[i]); i += 1 }
                fds.append((Int(token.trimmingCharacters(in: .whitespaces)), s))
                token = ""
            } else if c == "," {
                flushToken()
            } else {
                token.append(c)
            }
            i += 1
        }
        flushToken()
        return (fds, strings, numbers)
    }

    // MARK: - The power-loss model

    enum NameOp {
        case create(String)
        case mkdir(String)
        case rename(String, String, replaced: Bool)
        case unlink(String)
        case rmdir(String)
        case symlink(String)

        var folders: [String] {
            switch self {
            case .create(let p), .mkdir(let p), .unlink(let p), .rmdir(let p), .symlink(let p): return [parent(p)]
            case .rename(let a, let b, _): return [parent(a), parent(b)]
            }
        }
    }

    static func parent(_ p: String) -> String {
        guard let slash = p.lastIndex(of: "/"), slash != p.startIndex else { return "/" }
        return String(p[..<slash])
    }

    struct Model {
        /// Per file (by its name at the end): written length and synced length.
        var written: [String: Int] = [:]
        var synced: [String: Int] = [:]
        /// Name operations with the index of the event, and the last folder sync per folder.
        var names: [(Int, NameOp)] = []
        var folderSynced: [String: Int] = [:]
        let root: String
        let initial: String
        /// Names that existed before the run (relative to the root) and were not changed before.
        var untouched: Set<String> = []

        /// `trace` was recorded while the run's files lay at `root`; `initial` is the folder the run
        /// started from, and `now` where the run's files lie now (the killed folder, moved away
        /// from `root`; `root` itself when they were not moved).
        init(trace: [Event], root: String, initial: String, now: String? = nil) {
            self.root = root
            self.initial = initial
            let now = now ?? root
            var exists = Set<String>()
            if let e = FileManager.default.enumerator(atPath: initial) {
                while let p = e.nextObject() as? String { exists.insert(root + "/" + p) }
            }
            exists.insert(root)
            untouched = exists
            var created = Set<String>()
            /// Whether a traced path under `root` is a folder: the root, a folder the run created, or
            /// one that is a folder in the initial folder or where the run's files lie now. (Asking
            /// the file system at `root` itself is wrong: the files were moved away from there, and
            /// a folder fsync'd there would be taken for a file, its names for unsynced ones.)
            func isFolder(_ p: String) -> Bool {
                if p == root || created.contains(p) { return true }
                guard p.hasPrefix(root + "/") else { return false }
                let rel = p.dropFirst(root.count)
                for base in [initial, now] {
                    var isDir: ObjCBool = false
                    if FileManager.default.fileExists(atPath: base + rel, isDirectory: &isDir), isDir.boolValue { return true }
                }
                return false
            }
            var position: [Int: Int] = [:]
            var append: Set<Int> = []
            func initialSize(_ p: String) -> Int {
                guard p.hasPrefix(root + "/") else { return 0 }
                let original = initial + p.dropFirst(root.count)
                return ((try? FileManager.default.attributesOfItem(atPath: original))?[.size] as? Int) ?? 0
            }
            func known(_ p: String) {
                if written[p] == nil { written[p] = initialSize(p); synced[p] = written[p] }
            }
            func resolve(_ dir: String?, _ path: String) -> String {
                if path.hasPrefix("/") { return path }
                return (dir ?? root) + "/" + path
            }
            for (index, e) in trace.enumerated() {
                guard let result = e.result, result >= 0 else { continue }
                let f = fields(e.args)
                switch e.name {
                case "open", "openat", "creat":
                    guard let path = e.resultPath, path.hasPrefix(root) else { continue }
                    let flags = e.args
                    // A folder opened to be synced (SQLite opens its folder without O_DIRECTORY).
                    if flags.contains("O_DIRECTORY") || isFolder(path) { continue }
                    if (flags.contains("O_CREAT") || e.name == "creat") && !exists.contains(path) {
                        names.append((index, .create(path)))
                        exists.insert(path)
                        written[path] = 0
                        synced[path] = 0
                    }
                    known(path)
                    untouched.remove(path)
                    if flags.contains("O_TRUNC") || e.name == "creat" { written[path] = 0; synced[path] = min(synced[path] ?? 0, 0) }
                    position[result] = 0
                    if flags.contains("O_APPEND") { append.insert(result) } else { append.remove(result) }
                case "write", "writev":
                    guard let (fd, path) = f.fds.first, let fd, path.hasPrefix(root) else { continue }
                    known(path)
                    let at = append.contains(fd) ? written[path]! : position[fd] ?? 0
                    written[path] = max(written[path]!, at + result)
                    position[fd] = at + result
                case "pwrite64", "pwritev", "pwritev2":
                    guard let (_, path) = f.fds.first, path.hasPrefix(root), let offset = f.numbers.last else { continue }
                    known(path)
                    written[path] = max(written[path]!, offset + result)
                case "lseek":
                    guard let (fd, _) = f.fds.first, let fd else { continue }
                    position[fd] = result
                case "ftruncate":
                    guard let (_, path) = f.fds.first, path.hasPrefix(root), let length = f.numbers.last else { continue }
                    known(path)
                    written[path] = length
                    synced[path] = min(synced[path]!, length)
                case "fsync", "fdatasync":
                    guard let (_, path) = f.fds.first, path.hasPrefix(root) else { continue }
                    if isFolder(path) {
                        folderSynced[path] = index
                    } else {
                        known(path)
                        synced[path] = written[path]
                    }
                case "rename", "renameat", "renameat2":
                    let dirs = f.fds.map(\.1)
                    guard f.strings.count >= 2 else { continue }
                    let a = resolve(dirs.first, f.strings[0])
                    let b = resolve(dirs.count > 1 ? dirs[1] : dirs.first, f.strings[1])
                    guard a.hasPrefix(root) || b.hasPrefix(root) else { continue }
                    let replaced = exists.contains(b) && untouched.contains(b)
                    names.append((index, .rename(a, b, replaced: replaced)))
                    exists.remove(a); exists.insert(b)
                    if created.remove(a) != nil { created.insert(b) }
                    untouched.remove(a); untouched.remove(b)
                    written[b] = written.removeValue(forKey: a)
                    synced[b] = synced.removeValue(forKey: a)
                case "unlink", "unlinkat", "rmdir":
                    let dirs = f.fds.map(\.1)
                    guard let s = f.strings.first else { continue }
                    let p = resolve(dirs.first, s)
                    guard p.hasPrefix(root) else { continue }
                    names.append((index, e.name == "rmdir" || e.args.contains("AT_REMOVEDIR") ? .rmdir(p) : .unlink(p)))
                    exists.remove(p)
                    written[p] = nil
                    synced[p] = nil
                case "mkdir", "mkdirat":
                    let dirs = f.fds.map(\.1)
                    guard let s = f.strings.first else { continue }
                    let p = resolve(dirs.first, s)
                    guard p.hasPrefix(root) else { continue }
                    names.append((index, .mkdir(p)))
                    exists.insert(p)
                    created.insert(p)
                case "symlink", "symlinkat", "link", "linkat":
                    let dirs = f.fds.map(\.1)
                    guard let s = f.strings.last else { continue }
                    let p = resolve(dirs.last, s)
                    guard p.hasPrefix(root) else { continue }
                    names.append((index, .symlink(p)))
                    exists.insert(p)
                default:
                    continue
                }
            }
        }

        /// Applies `variant` to `target`, a copy of the killed run's folder `root`.
        func apply(_ variant: Variant, to target: String) throws -> (cut: Int, undone: Int) {
            if variant == .processDeath { return (0, 0) }
            var cutCount = 0, undone = 0
            let fm = FileManager.default
            func mapped(_ p: String) -> String { target + p.dropFirst(root.count) }
            for (path, length) in written where path.hasPrefix(root) {
                let kept = synced[path] ?? 0
                guard kept < length else { continue }
                let cut = variant == .dataTorn ? kept + (length - kept) / 2 : kept
                let p = mapped(path)
                var st = stat()
                guard lstat(p, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, Int(st.st_size) > cut else { continue }
                guard truncate(p, off_t(cut)) == 0 else {
                    throw ToolMissing(description: "cannot truncate \(p): \(String(cString: strerror(errno)))")
                }
                cutCount += 1
                if ProcessInfo.processInfo.environment["MULAN_CRASH_DEBUG"] == "1" {
                    print("crash state \(variant.rawValue): \(p) cut from \(st.st_size) to \(cut) (written \(length), synced \(kept))")
                }
            }
            guard variant == .namesUndone else { return (cutCount, 0) }
            for (index, op) in names.reversed() {
                let durable = op.folders.allSatisfy { (folderSynced[$0] ?? -1) > index }
                if durable { continue }
                undone += 1
                switch op {
                case .create(let p), .symlink(let p):
                    try? fm.removeItem(atPath: mapped(p))
                case .mkdir(let p):
                    try? fm.removeItem(atPath: mapped(p))
                case .rename(let a, let b, let replaced):
                    let (ma, mb) = (mapped(a), mapped(b))
                    if (try? fm.attributesOfItem(atPath: mb)) != nil {
                        try? fm.createDirectory(atPath: parent(ma), withIntermediateDirectories: true)
                        _ = Foundation.rename(mb, ma)
                    }
                    if replaced { try restore(b, to: mb) }
                case .unlink(let p):
                    if untouchedBefore(p) { try restore(p, to: mapped(p)) }
                case .rmdir(let p):
                    try? fm.createDirectory(atPath: mapped(p), withIntermediateDirectories: true)
                }
            }
            return (cutCount, undone)
        }

        func untouchedBefore(_ p: String) -> Bool {
            FileManager.default.fileExists(atPath: initial + p.dropFirst(root.count))
        }

        func restore(_ p: String, to target: String) throws {
            let source = initial + p.dropFirst(root.count)
            guard FileManager.default.fileExists(atPath: source) else { return }
            try? FileManager.default.removeItem(atPath: target)
            try? FileManager.default.createDirectory(atPath: parent(target), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: source, toPath: target)
        }
    }
}
