import Foundation
import MulanTensor
import MulanTestSupport
import Testing

@Suite("SafeTensors: reading untrusted files")
struct SafeTensorsHardeningTests {
    /// A file from a header text and a body, with the header length `length` (default: the header's).
    static func file(_ header: String, body: Data = Data(repeating: 0, count: 64), length: UInt64? = nil) -> Data {
        var out = Data()
        let json = Data(header.utf8)
        withUnsafeBytes(of: (length ?? UInt64(json.count)).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(body)
        return out
    }

    static func entry(_ name: String, dtype: String = "F32", shape: String, offsets: String) -> String {
        #""\#(name)":{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":\#(offsets)}"#
    }

    /// The error message of reading `bytes` (nil when it reads).
    static func readError(_ bytes: Data, include: ((String) -> Bool)? = nil) throws -> (message: String?, path: String) {
        let dir = TempDir("safetensors")
        let path = dir.file("t.safetensors")
        try bytes.write(to: URL(fileURLWithPath: path))
        do {
            _ = try SafeTensors.read(path, include: include)
            return (nil, path)
        } catch {
            return ("\(error)", path)
        }
    }

    @Test func roundTripAndPartialReads() throws {
        let dir = TempDir("safetensors")
        let path = dir.file("ok.safetensors")
        let a = Tensor(shape: [2, 3], [1, 2, 3, 4, 5, 6]), b = Tensor(shape: [0, 4]), c = Tensor(shape: [], [7])
        try SafeTensors.write([("a", a), ("b", b), ("c", c)], metadata: ["k": "v"], to: path)
        let all = try SafeTensors.read(path)
        #expect(all.tensors == ["a": a, "b": b, "c": c] && all.metadata == ["k": "v"])
        #expect(try SafeTensors.read(path) { $0 == "a" }.tensors == ["a": a])
        // Integer tensors are checked but can only be skipped, not read.
        var ids = Data()
        for i: Int64 in [0, 1, 2, 3] { withUnsafeBytes(of: i.littleEndian) { ids.append(contentsOf: $0) } }
        let floats = Data([0, 0, 0x80, 0x3F])  // 1.0
        let mixed = Self.file("{" + Self.entry("ids", dtype: "I64", shape: "[1,4]", offsets: "[0,32]") + ","
                              + Self.entry("w", shape: "[1]", offsets: "[32,36]") + "}", body: ids + floats)
        let skipped = try Self.readError(mixed) { $0 != "ids" }
        #expect(skipped.message == nil)
        let full = try Self.readError(mixed)
        #expect(full.message == "\(full.path): tensor ids has dtype I64; only F32, F16 and BF16 are read")
        // F16 and BF16 convert.
        let half = Self.file("{" + Self.entry("h", dtype: "F16", shape: "[2]", offsets: "[0,4]") + ","
                             + Self.entry("g", dtype: "BF16", shape: "[1]", offsets: "[4,6]") + "}",
                             body: Data([0x00, 0x3C, 0x00, 0xC0, 0x80, 0x3F]))
        try half.write(to: URL(fileURLWithPath: path))
        #expect(try SafeTensors.read(path).tensors == ["h": Tensor(shape: [2], [1, -2]), "g": Tensor(shape: [1], [1])])
        // An empty header is a file without tensors.
        #expect(try Self.readError(Self.file("{}", body: Data())).message == nil)
    }

    @Test func headerLengthIsChecked() throws {
        let valid = Self.file("{" + Self.entry("w", shape: "[1]", offsets: "[0,4]") + "}")
        for (bytes, expected) in [
            (Data(), "is too short to be a safetensors file (0 bytes)"),
            (Data([1, 2, 3]), "is too short"),
            (Self.file("{}", body: Data(), length: UInt64.max), "header length -1 is negative"),
            (Self.file("{}", body: Data(), length: 1 << 63), "header length -9223372036854775808 is negative"),
            (Self.file("{}", body: Data(), length: UInt64(Int64.max)), "header length 9223372036854775807 exceeds the file of 10 bytes"),
            (Self.file("{}", body: Data(), length: 3), "header length 3 exceeds the file"),
            (Self.file("{}", body: Data(), length: 1), "header length 1 cannot hold a JSON object"),
            (valid.prefix(20), "exceeds the file"),
            (Data("garbage, not a safetensors file".utf8), "exceeds the file"),
            (Self.file("[1, 2]", body: Data()), "the header is not a JSON object"),
            (Self.file("{\"w\": ", body: Data()), "the header is not valid JSON"),
        ] {
            let (message, path) = try Self.readError(bytes)
            #expect(message?.hasPrefix(path) == true, "\(message ?? "read")")
            #expect(message?.contains(expected) == true, "\(message ?? "read") — expected \(expected)")
        }
    }

    @Test func offsetsAndShapesAreChecked() throws {
        let cases: [(String, String)] = [
            (Self.entry("w", shape: "[16]", offsets: "[0,4096]"), "tensor w has data_offsets [0, 4096] beyond the data section of 64 bytes"),
            (Self.entry("w", shape: "[1]", offsets: "[60,64]") + "," + Self.entry("v", shape: "[1]", offsets: "[64,68]"),
             "tensor v has data_offsets [64, 68] beyond"),
            (Self.entry("w", shape: "[1]", offsets: "[9223372036854775803,9223372036854775807]"), "tensor w has data_offsets"),
            (Self.entry("w", shape: "[2305843009213693951]", offsets: "[0,9223372036854775804]"), "tensor w has data_offsets"),
            (Self.entry("w", shape: "[1]", offsets: "[18446744073709551615,3]"), "tensor w has a malformed header entry"),
            (Self.entry("w", shape: "[1]", offsets: "[1e300,4]"), "tensor w has a malformed header entry"),
            (Self.entry("w", shape: "[1]", offsets: "[0]"), "tensor w has a malformed header entry"),
            (Self.entry("w", shape: "[1]", offsets: "\"0-4\""), "tensor w has a malformed header entry"),
            (Self.entry("w", shape: "[1]", offsets: "[8,4]"), "tensor w has reversed data_offsets [8, 4]"),
            (Self.entry("w", shape: "[1]", offsets: "[-8,-4]"), "tensor w has negative data_offsets [-8, -4] (it would overlap the header)"),
            (Self.entry("w", shape: "[1]", offsets: "[-4,0]"), "negative data_offsets"),
            (Self.entry("w", shape: "[-1,-4]", offsets: "[0,16]"), "tensor w has a negative dimension in shape [-1, -4]"),
            (Self.entry("w", shape: "[4294967296,4294967296,4294967296]", offsets: "[0,16]"),
             "tensor w has shape [4294967296, 4294967296, 4294967296], too many elements"),
            (Self.entry("w", shape: "[4611686018427387904]", offsets: "[0,16]"), "too many bytes"),
            (Self.entry("w", shape: "[3]", offsets: "[0,16]"), "(16 bytes) that do not fit shape [3] of F32 (12 bytes)"),
            (Self.entry("w", dtype: "Q4", shape: "[3]", offsets: "[0,12]"), "tensor w has unknown dtype Q4"),
            (Self.entry("w", shape: "[4]", offsets: "[0,16]") + "," + Self.entry("v", shape: "[2]", offsets: "[12,20]"),
             "tensors w [0, 16] and v [12, 20] share bytes"),
        ]
        for (entries, expected) in cases {
            let (message, path) = try Self.readError(Self.file("{" + entries + "}"))
            #expect(message?.hasPrefix(path + ": ") == true, "\(message ?? "read")")
            #expect(message?.contains(expected) == true, "\(message ?? "read") — expected \(expected)")
            // Skipping the tensor does not skip its checks.
            #expect(try Self.readError(Self.file("{" + entries + "}")) { _ in false }.message != nil)
        }
    }
}
