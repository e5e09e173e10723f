// Fuzzes the TOML reader (mulan-filter --config) and the filter configuration built from it.
import FuzzSupport
import MulanCore
import MulanFormats
import MulanText

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    let text = String(decoding: input.rest, as: UTF8.self)
    if let root = try? TOMLParser.parse(text, source: "fuzz.toml") {
        _ = TOMLValue.table(root).json
    }
    if input.selector & 1 == 1 {
        _ = try? FilterConfig.parse(text, source: "fuzz.toml")
    }
    return 0
}
