import Foundation
import MulanCore

/// A WordPiece vocabulary (`vocab.txt`: one token per line, id = line number − 1) held as a
/// byte trie, so the longest vocabulary prefix of a word is found in one pass over its bytes.
/// Continuation pieces (`##…`) are found from the node reached by "##".
public final class WordPieceVocabulary: Sendable {
    public let tokens: [String]
    public let unknownID: Int32
    public let clsID: Int32?
    public let sepID: Int32?
    /// SHA-256 of the vocabulary file, to record which vocabulary produced a set of ids.
    public let sha256: String

    // Flattened trie: node i has children edgeBytes/edgeTargets[firstEdge[i] ..< firstEdge[i] + edgeCount[i]],
    // sorted by byte; tokenID[i] is the id of the token ending at node i, or −1.
    let firstEdge: [Int32]
    let edgeCount: [UInt16]
    let tokenID: [Int32]
    let edgeBytes: [UInt8]
    let edgeTargets: [Int32]
    /// Root-level transitions as a direct table (the hottest lookups).
    let rootTable: [Int32]
    let continuationRoot: Int32

    /// Loads `vocab.txt`. Throws when the file cannot be read or lacks `[UNK]`.
    public convenience init(path: String) throws(MulanError) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw MulanError(.io, "cannot read the vocabulary \(path)", hint: "pass --vocab pointing at a BERT vocab.txt",
                             cause: error)
        }
        var lines = [String]()
        var start = data.startIndex
        for i in data.indices where data[i] == 0x0A {
            lines.append(String(decoding: data[start..<i], as: UTF8.self))
            start = i + 1
        }
        if start < data.endIndex { lines.append(String(decoding: data[start...], as: UTF8.self)) }
        let tokens = lines.map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
        let digest = SHA256Digest()
        data.withUnsafeBytes { digest.update($0) }
        try self.init(tokens: tokens, sha256: digest.hex(), source: path)
    }

    public init(tokens: [String], sha256: String = "", source: String = "vocabulary") throws(MulanError) {
        self.tokens = tokens
        self.sha256 = sha256
        var ids: [String: Int32] = [:]
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = Int32(i) }
        guard let unk = ids["[UNK]"] else {
            throw MulanError(.usage, "\(source) has no [UNK] token", hint: "use a BERT WordPiece vocab.txt")
        }
        unknownID = unk
        clsID = ids["[CLS]"]
        sepID = ids["[SEP]"]

        // Build a pointer trie, then flatten it breadth-first.
        final class Builder {
            var children: [UInt8: Builder] = [:]
            var token: Int32 = -1
        }
        let root = Builder()
        for (token, id) in ids {
            var node = root
            for byte in token.utf8 {
                if let next = node.children[byte] {
                    node = next
                } else {
                    let next = Builder()
                    node.children[byte] = next
                    node = next
                }
            }
            node.token = id
        }
        var order: [Builder] = [root]
        var index: [ObjectIdentifier: Int32] = [ObjectIdentifier(root): 0]
        var head = 0
        while head < order.count {
            let node = order[head]
            head += 1
            for (_, child) in node.children.sorted(by: { $0.key < $1.key }) {
                index[ObjectIdentifier(child)] = Int32(order.count)
                order.append(child)
            }
        }
        var firstEdge = [Int32](), edgeCount = [UInt16](), tokenID = [Int32]()
        var edgeBytes = [UInt8](), edgeTargets = [Int32]()
        for node in order {
            firstEdge.append(Int32(edgeBytes.count))
            edgeCount.append(UInt16(node.children.count))
            tokenID.append(node.token)
            for (byte, child) in node.children.sorted(by: { $0.key < $1.key }) {
                edgeBytes.append(byte)
                edgeTargets.append(index[ObjectIdentifier(child)]!)
            }
        }
        self.firstEdge = firstEdge
        self.edgeCount = edgeCount
        self.tokenID = tokenID
        self.edgeBytes = edgeBytes
        self.edgeTargets = edgeTargets
        var table = [Int32](repeating: -1, count: 256)
        for e in 0..<Int(edgeCount[0]) { table[Int(edgeBytes[e])] = edgeTargets[e] }
        rootTable = table
        let hash = table[0x23]
        var cont: Int32 = -1
        if hash >= 0 {
            let lo = Int(firstEdge[Int(hash)])
            for e in lo..<(lo + Int(edgeCount[Int(hash)])) where edgeBytes[e] == 0x23 { cont = edgeTargets[e] }
        }
        continuationRoot = cont
    }

    public var count: Int { tokens.count }

    public func id(of token: String) -> Int32? {
        var node: Int32 = 0
        for byte in token.utf8 {
            node = child(node, byte)
            if node < 0 { return nil }
        }
        let t = tokenID[Int(node)]
        return t >= 0 ? t : nil
    }

    @inline(__always)
    func child(_ node: Int32, _ byte: UInt8) -> Int32 {
        if node == 0 { return rootTable[Int(byte)] }
        let lo = Int(firstEdge[Int(node)])
        let n = Int(edgeCount[Int(node)])
        var i = lo
        let end = lo + n
        while i < end {
            let b = edgeBytes[i]
            if b == byte { return edgeTargets[i] }
            if b > byte { return -1 }
            i += 1
        }
        return -1
    }

    /// Appends the WordPiece ids of one pre-tokenized word (UTF-8 bytes, `scalarCount` scalars)
    /// to `output`: greedy longest match first, `##` continuations, `[UNK]` for a word longer than
    /// `maxScalars` or with a part no piece matches.
    @inline(__always)
    func appendPieces(of word: UnsafeBufferPointer<UInt8>, scalarCount: Int, maxScalars: Int,
                      to output: inout [Int32]) {
        if scalarCount > maxScalars {
            output.append(unknownID)
            return
        }
        let mark = output.count
        var start = 0
        let n = word.count
        while start < n {
            var node: Int32 = start == 0 ? 0 : continuationRoot
            var best: Int32 = -1
            var bestEnd = start
            var i = start
            while i < n && node >= 0 {
                node = child(node, word[i])
                i += 1
                if node >= 0 {
                    let t = tokenID[Int(node)]
                    if t >= 0 { best = t; bestEnd = i }
                }
            }
            if best < 0 {
                output.removeSubrange(mark...)
                output.append(unknownID)
                return
            }
            output.append(best)
            start = bestEnd
        }
    }
}
