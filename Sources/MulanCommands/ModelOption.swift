import Foundation
import MulanCore
import MulanTraining

/// A model named the way `mulan-filter audio --model` and `mulan-ingest --clip-model` take it.
enum ModelOption {
    /// The checkpoint of `path`: a mulan-train run directory (its newest checkpoint) or a
    /// checkpoint file. `option` names the flag in the messages.
    static func checkpoint(_ path: String, option: String) throws(MulanError) -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw MulanError(.usage, "\(option) \(path) does not exist",
                             hint: "pass a mulan-train run directory or one of its checkpoint-NNNNNN.safetensors")
        }
        if isDirectory.boolValue, !FileManager.default.isReadableFile(atPath: path) {
            throw MulanError(.usage, "\(option) \(path) cannot be read", hint: "check the folder's permissions")
        }
        return try Embedder.resolveCheckpoint(isDirectory.boolValue ? nil : path,
                                              runDirectory: isDirectory.boolValue ? path : nil)
    }
}
