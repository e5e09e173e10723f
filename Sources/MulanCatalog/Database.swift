internal import CMulanSQLite
import MulanCore
import Foundation

/// A value bound to or read from SQLite.
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    public var int: Int? { if case .integer(let v) = self { Int(v) } else { nil } }
    public var double: Double? {
        switch self {
        case .real(let v): v
        case .integer(let v): Double(v)
        default: nil
        }
    }
    public var string: String? { if case .text(let v) = self { v } else { nil } }
    public var bytes: [UInt8]? { if case .blob(let v) = self { v } else { nil } }
}

public protocol SQLBindable { var sqlValue: SQLValue { get } }
extension Int: SQLBindable { public var sqlValue: SQLValue { .integer(Int64(self)) } }
extension Int64: SQLBindable { public var sqlValue: SQLValue { .integer(self) } }
extension Double: SQLBindable { public var sqlValue: SQLValue { .real(self) } }
extension String: SQLBindable { public var sqlValue: SQLValue { .text(self) } }
extension Bool: SQLBindable { public var sqlValue: SQLValue { .integer(self ? 1 : 0) } }
extension Array: SQLBindable where Element == UInt8 { public var sqlValue: SQLValue { .blob(self) } }
extension SQLValue: SQLBindable { public var sqlValue: SQLValue { self } }
extension Optional: SQLBindable where Wrapped: SQLBindable {
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

/// One SQLite connection (`sqlite3_open_v2`), closed by its only owner in `deinit`.
/// Not Sendable: a connection belongs to one task; the stages use one writer connection.
public final class Database {
    let handle: OpaquePointer
    public let path: String
    private var statementCache: [String: Statement] = [:]

    /// Opens (creating if needed) the database at `path`, in WAL mode with foreign keys on.
    ///
    /// `immutable` opens a finished file read-only with SQLite's `immutable=1` URI parameter: no
    /// locks, no `-wal`/`-shm` files, which is what readers on other machines of a network file
    /// system need. Only for files nobody writes any more (a write-ahead log left behind by an
    /// interrupted writer would be ignored, so such files are refused).
    public init(path: String, readOnly: Bool = false, immutable: Bool = false) throws(MulanError) {
        self.path = path
        var db: OpaquePointer?
        var flags = readOnly || immutable ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        var name = path
        if immutable {
            if let size = (try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int, size > 0 {
                throw MulanError(.catalog, "\(path) has an unfinished write-ahead log (\(path)-wal)",
                                 hint: "the process that wrote it was interrupted: re-run that stage (or worker) first")
            }
            name = "file:" + Self.uriEscaped(path) + "?immutable=1"
            flags |= SQLITE_OPEN_URI
        }
        let rc = sqlite3_open_v2(name, &db, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(db)
            throw MulanError(.catalog, "cannot open the catalog \(path)",
                             hint: "check that the work directory is writable", cause: LibraryError("SQLite", code: rc, message))
        }
        handle = db
        sqlite3_busy_timeout(db, 30_000)
        if !readOnly && !immutable {
            // Power loss (docs/reliability.md, "Power loss"): WAL with synchronous = FULL syncs the
            // WAL at every commit, so a commit that returned is on the disk. NORMAL would let the last
            // commits roll back, after ingest had already moved their clips into the store.
            // MULAN_UNSAFE_SKIP_FSYNC=data|all (tests and bench/fsync-cost.sh only) restores NORMAL.
            try execute("PRAGMA journal_mode = WAL")
            try execute(Durable.skip.contains(.data) ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL")
            // SQLite syncs the folder when it creates the WAL, not when it creates the database file.
            try Durable.syncFolder(Durable.folder(of: path))
        }
        try execute("PRAGMA foreign_keys = ON")
    }

    deinit {
        statementCache.removeAll()
        sqlite3_close_v2(handle)
    }

    /// A path as a `file:` URI path: `%`, `?` and `#` (and non-printing bytes) percent-encoded.
    static func uriEscaped(_ path: String) -> String {
        var out: [UInt8] = []
        let digits = Array("0123456789ABCDEF".utf8)
        for b in path.utf8 {
            if b == 0x25 || b == 0x3F || b == 0x23 || b < 0x21 || b == 0x7F {
                out += [0x25, digits[Int(b >> 4)], digits[Int(b & 0xF)]]
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    func error(_ what: String, _ rc: Int32) -> MulanError {
        MulanError(.catalog, "\(what) failed on \(path)", hint: Self.hint(rc),
                   cause: LibraryError("SQLite", code: rc, String(cString: sqlite3_errmsg(handle)) + " (code \(rc))"))
    }

    /// What to do about the errors a full or failing disk gives (the primary code of `rc`).
    static func hint(_ rc: Int32) -> String? {
        switch rc & 0xff {
        case SQLITE_FULL: "the disk holding the catalog is full: free space, then re-run (committed work is kept)"
        case SQLITE_IOERR: "the catalog could not be read or written: free space on its disk, raise the file-size "
            + "limit, or fix the file system, then re-run (committed work is kept)"
        case SQLITE_READONLY: "the catalog or its folder is read-only: make it writable, then re-run"
        default: nil
        }
    }

    /// Runs one or more statements without results (`sqlite3_exec`).
    public func execute(_ sql: String) throws(MulanError) {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(message)
            throw MulanError(.catalog, "SQL failed on \(path): \(sql.prefix(80))", hint: Self.hint(rc), cause: LibraryError("SQLite", code: rc, text))
        }
    }

    /// A prepared statement, cached per SQL text.
    public func statement(_ sql: String) throws(MulanError) -> Statement {
        if let cached = statementCache[sql] {
            cached.reset()
            return cached
        }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error("preparing \(sql.prefix(80))", rc) }
        let statement = Statement(stmt, database: self)
        statementCache[sql] = statement
        return statement
    }

    /// Runs a statement with `arguments` and returns nothing.
    public func run(_ sql: String, _ arguments: [any SQLBindable] = []) throws(MulanError) {
        let s = try statement(sql)
        try s.bind(arguments)
        while try s.step() {}
    }

    /// Runs a query and returns every row as an array of values.
    public func rows(_ sql: String, _ arguments: [any SQLBindable] = []) throws(MulanError) -> [[SQLValue]] {
        let s = try statement(sql)
        try s.bind(arguments)
        var result: [[SQLValue]] = []
        while try s.step() { result.append(s.row()) }
        return result
    }

    /// The first row of a query, or nil.
    public func row(_ sql: String, _ arguments: [any SQLBindable] = []) throws(MulanError) -> [SQLValue]? {
        let s = try statement(sql)
        try s.bind(arguments)
        defer { s.reset() }
        return try s.step() ? s.row() : nil
    }

    /// Steps through a query's rows one at a time with its own statement (not cached), so the
    /// body may write to other tables meanwhile; memory stays bounded by one row.
    public func forEach(_ sql: String, _ arguments: [any SQLBindable] = [],
                        _ body: ([SQLValue]) throws -> Void) throws {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error("preparing \(sql.prefix(80))", rc) }
        let statement = Statement(stmt, database: self)
        try statement.bind(arguments)
        while try statement.step() { try body(statement.row()) }
    }

    /// Runs a query and returns every row, its columns read by name (`row["column"]`).
    func select(_ sql: String, _ arguments: [any SQLBindable] = []) throws(MulanError) -> [Row] {
        let s = try statement(sql)
        try s.bind(arguments)
        var result: [Row] = []
        while try s.step() { result.append(s.namedRow()) }
        return result
    }

    /// The first row of a query, its columns read by name, or nil.
    func selectFirst(_ sql: String, _ arguments: [any SQLBindable] = []) throws(MulanError) -> Row? {
        let s = try statement(sql)
        try s.bind(arguments)
        defer { s.reset() }
        return try s.step() ? s.namedRow() : nil
    }

    /// `forEach` with columns read by name: its own statement (not cached), one row in memory at a time.
    func forEachRow(_ sql: String, _ arguments: [any SQLBindable] = [], _ body: (Row) throws -> Void) throws {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error("preparing \(sql.prefix(80))", rc) }
        let statement = Statement(stmt, database: self)
        try statement.bind(arguments)
        while try statement.step() { try body(statement.namedRow()) }
    }

    /// A query whose rows are pulled one at a time (its own statement, not cached), for merging
    /// several ordered queries.
    public func cursor(_ sql: String, _ arguments: [any SQLBindable] = []) throws(MulanError) -> RowCursor {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error("preparing \(sql.prefix(80))", rc) }
        let statement = Statement(stmt, database: self)
        try statement.bind(arguments)
        return RowCursor(statement: statement, database: self)
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// Runs `body` in a write transaction (`BEGIN IMMEDIATE`), committing on success and
    /// rolling back on any error.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}

/// A prepared statement (`sqlite3_stmt`), finalized by its owner in `deinit`.
public final class Statement {
    private let stmt: OpaquePointer
    private unowned let database: Database

    init(_ stmt: OpaquePointer, database: Database) {
        self.stmt = stmt
        self.database = database
    }

    deinit { sqlite3_finalize(stmt) }

    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    /// Binds positional arguments (`sqlite3_bind_*`).
    public func bind(_ arguments: [any SQLBindable]) throws(MulanError) {
        for (i, argument) in arguments.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch argument.sqlValue {
            case .null: rc = sqlite3_bind_null(stmt, index)
            case .integer(let v): rc = sqlite3_bind_int64(stmt, index, v)
            case .real(let v): rc = sqlite3_bind_double(stmt, index, v)
            case .text(let v):
                var text = v
                rc = text.withUTF8 { utf8 -> Int32 in
                    // An empty buffer may have no address; bind a zero-length text then.
                    guard let base = utf8.baseAddress else {
                        return sqlite3_bind_text(stmt, index, "", 0, mulan_sqlite_transient())
                    }
                    return UnsafeRawPointer(base).withMemoryRebound(to: CChar.self, capacity: utf8.count) {
                        sqlite3_bind_text(stmt, index, $0, Int32(utf8.count), mulan_sqlite_transient())
                    }
                }
            case .blob(let v):
                rc = v.withUnsafeBytes { raw -> Int32 in
                    guard let base = raw.baseAddress else { return sqlite3_bind_zeroblob(stmt, index, 0) }
                    return sqlite3_bind_blob(stmt, index, base, Int32(raw.count), mulan_sqlite_transient())
                }
            }
            if rc != SQLITE_OK { throw database.error("binding argument \(index)", rc) }
        }
    }

    /// Advances; true when a row is available (`sqlite3_step`).
    public func step() throws(MulanError) -> Bool {
        let rc = sqlite3_step(stmt)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw database.error("executing \(String(cString: sqlite3_sql(stmt)).prefix(80))", rc)
        }
    }

    /// The result's column names (`sqlite3_column_name`), read once per statement.
    private var columnIndex: ColumnIndex?

    /// The current row, its columns read by name.
    func namedRow() -> Row {
        let columns: ColumnIndex
        if let cached = columnIndex {
            columns = cached
        } else {
            columns = ColumnIndex((0..<sqlite3_column_count(stmt)).map { String(cString: sqlite3_column_name(stmt, $0)) },
                                  sql: String(cString: sqlite3_sql(stmt)))
            columnIndex = columns
        }
        return Row(values: row(), columns: columns)
    }

    /// The current row's values.
    public func row() -> [SQLValue] {
        (0..<sqlite3_column_count(stmt)).map { i in
            switch sqlite3_column_type(stmt, i) {
            case SQLITE_INTEGER: .integer(sqlite3_column_int64(stmt, i))
            case SQLITE_FLOAT: .real(sqlite3_column_double(stmt, i))
            case SQLITE_NULL: .null
            case SQLITE_BLOB:
                .blob(sqlite3_column_blob(stmt, i).map {
                    Array(UnsafeRawBufferPointer(start: $0, count: Int(sqlite3_column_bytes(stmt, i))))
                } ?? [])
            default:
                .text(sqlite3_column_text(stmt, i).map {
                    String(decoding: UnsafeRawBufferPointer(start: $0, count: Int(sqlite3_column_bytes(stmt, i))), as: UTF8.self)
                } ?? "")
            }
        }
    }
}

/// The rows of one query, pulled one at a time (`Database.cursor`). Keeps its connection alive.
public final class RowCursor {
    private let statement: Statement
    private let database: Database

    init(statement: Statement, database: Database) {
        self.statement = statement
        self.database = database
    }

    /// The next row, or nil at the end.
    public func next() throws(MulanError) -> [SQLValue]? {
        try statement.step() ? statement.row() : nil
    }

    /// The next row, its columns read by name, or nil at the end.
    func nextRow() throws(MulanError) -> Row? {
        try statement.step() ? statement.namedRow() : nil
    }
}

/// The names of a result's columns and where each is.
final class ColumnIndex: Sendable {
    let positions: [String: Int]
    let names: [String]
    let sql: String

    init(_ names: [String], sql: String) {
        self.names = names
        self.sql = sql
        var positions: [String: Int] = [:]
        for (i, name) in names.enumerated() where positions[name] == nil { positions[name] = i }
        self.positions = positions
    }
}

/// One result row whose columns are read by name (`row["track_id"]`), so that a store's code does not
/// depend on the order of a SELECT list.
struct Row: Sendable {
    let values: [SQLValue]
    let columns: ColumnIndex

    /// The value of the column `name`; a name the query does not select is a programming error.
    subscript(_ name: String) -> SQLValue {
        guard let i = columns.positions[name] else {
            preconditionFailure("no column \(name) in the result of \(columns.sql.prefix(120)) (columns: \(columns.names.joined(separator: ", ")))")
        }
        return values[i]
    }
}
