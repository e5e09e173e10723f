// Fuzzes the safetensors reader (checkpoints, the pretrained text tower): every header entry is
// checked; tensors are converted with and without an include filter.
import Foundation
import FuzzSupport
import MulanTensor

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    // Selector bit 0: the input's first 8 bytes are the header length, or the harness writes it
    // (so that most inputs reach the JSON header checks).
    var bytes: Data
    if input.selector & 1 == 0 {
        bytes = input.data
    } else {
        let n = UInt64(input.rest.count)
        bytes = Data()
        withUnsafeBytes(of: n.littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(input.data)
        if input.selector & 2 != 0 { bytes.append(Data(repeating: 0x3F, count: Int(input.selector) * 4)) }
    }
    if let (tensors, _) = try? SafeTensors.read(data: bytes, path: "fuzz.safetensors") {
        for (_, t) in tensors { precondition(t.shape.reduce(1, *) == t.count, "shape and count disagree") }
    }
    _ = try? SafeTensors.read(data: bytes, path: "fuzz.safetensors", include: { $0.hasPrefix("a") })
    return 0
}
