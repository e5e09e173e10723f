import MulanCore
import MulanTensor

/// Starts the matrix-product layer for a stage that multiplies: sets the kernels' thread count,
/// loads OpenBLAS (its core chosen from the CPU's features unless `OPENBLAS_CORETYPE` is set) while
/// the stage still runs one thread, and says which core runs: an info line, and a warning, shown
/// even with `--quiet`, when the core uses narrower vectors than the CPU has.
@discardableResult
func startBLAS(threads: Int, console: Console) throws(MulanError) -> BLASCore {
    BLAS.threads = threads
    let core: BLASCore
    do {
        core = try BLAS.load()
    } catch {
        throw MulanError(.io, error.description)
    }
    console.log(.info, "BLAS: \(core.summary)", event: "blas",
                fields: console.format == .json ? ["core": core.core, "choice": core.choice.rawValue] : [:])
    if let warning = core.warning { console.log(.warning, warning, event: "blas") }
    return core
}
