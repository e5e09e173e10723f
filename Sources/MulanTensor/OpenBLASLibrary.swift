import Foundation
internal import CMulanOpenBLAS

/// The CPU's vector features that decide which OpenBLAS kernels it can run (CPUID and XGETBV,
/// through `mulan_read_cpu_features`).
public struct CPUFeatures: Sendable, Equatable {
    /// AVX2 and FMA, with YMM state saved by the OS: what OpenBLAS's Haswell kernels use.
    public var avx2FMA: Bool
    /// AVX-512 F, DQ, CD, BW and VL, with ZMM and opmask state saved by the OS: SkylakeX's set.
    public var avx512: Bool
    /// AVX-512 BF16 on top (Cooper Lake, Sapphire Rapids, Zen 4 and later).
    public var avx512BF16: Bool

    public init(avx2FMA: Bool, avx512: Bool, avx512BF16: Bool) {
        self.avx2FMA = avx2FMA
        self.avx512 = avx512
        self.avx512BF16 = avx512BF16
    }

    /// The CPU this process runs on.
    public static let current: CPUFeatures = {
        let f = mulan_read_cpu_features()
        let avx2FMA = f.avx && f.avx2 && f.fma && f.os_ymm
        let avx512 = avx2FMA && f.avx512f && f.avx512dq && f.avx512cd && f.avx512bw && f.avx512vl && f.os_zmm
        return CPUFeatures(avx2FMA: avx2FMA, avx512: avx512, avx512BF16: avx512 && f.avx512bf16)
    }()

    /// The widest vector level the CPU supports.
    public var level: BLASCore.VectorLevel { avx512 ? .avx512 : avx2FMA ? .avx2 : .belowAVX2 }

    /// The names of the features present, for logs and records ("avx2", "fma", "avx512", "avx512_bf16").
    public var names: [String] {
        (avx2FMA ? ["avx2", "fma"] : []) + (avx512 ? ["avx512"] : []) + (avx512BF16 ? ["avx512_bf16"] : [])
    }

    /// The OpenBLAS core mulan asks for on this CPU when `OPENBLAS_CORETYPE` is unset: the kernel
    /// family of the widest vectors the CPU has, whatever its model. nil: let OpenBLAS detect (no
    /// AVX2, or not x86). OpenBLAS 0.3.21 detects by CPU model and falls back to its generic
    /// Prescott kernel on models newer than its table (recent Xeons), 3 to 6 times slower.
    public var preferredCore: String? {
        if avx512 { return avx512BF16 ? "Cooperlake" : "SkylakeX" }
        return avx2FMA ? "Haswell" : nil
    }
}

/// Which OpenBLAS core (kernel family) runs mulan's matrix products, and why: printed at the start
/// of every stage that multiplies and recorded in each training run's `config.json` and summary.
public struct BLASCore: Sendable, Equatable, Codable {
    /// How the core was decided.
    public enum Choice: String, Sendable, Codable {
        /// The user's `OPENBLAS_CORETYPE` (always wins).
        case environment
        /// mulan set `OPENBLAS_CORETYPE` from the CPU's features (`CPUFeatures.preferredCore`).
        case cpuFeatures = "cpu-features"
        /// OpenBLAS's own detection (a CPU without AVX2, where mulan has nothing better to offer).
        case openBLAS = "openblas"
    }

    /// The vector width a core's kernels use.
    public enum VectorLevel: String, Sendable, Comparable, Codable {
        case belowAVX2 = "below-avx2", avx2, avx512
        var rank: Int { self == .avx512 ? 2 : self == .avx2 ? 1 : 0 }
        public static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }

        var label: String {
            switch self {
            case .belowAVX2: "generic (no AVX2)"
            case .avx2: "AVX2"
            case .avx512: "AVX-512"
            }
        }
    }

    /// `openblas_get_corename()`: the core OpenBLAS runs ("Cooperlake", "Haswell", "Prescott", …).
    public var core: String
    /// `OPENBLAS_CORETYPE` as OpenBLAS read it when it loaded (nil: unset, OpenBLAS detected).
    public var requested: String?
    public var choice: Choice
    /// `openblas_get_config()` ("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64").
    public var config: String
    /// The library file loaded.
    public var library: String
    /// `model name` from /proc/cpuinfo ("" where there is none).
    public var cpuModel: String
    /// The CPU's vector features (`CPUFeatures.names`).
    public var cpuFeatures: [String]
    /// The vector level of the core's kernels, and of the CPU.
    public var coreLevel: VectorLevel
    public var cpuLevel: VectorLevel

    enum CodingKeys: String, CodingKey {
        case core, requested, choice, config, library, cpuModel = "cpu_model", cpuFeatures = "cpu_features"
        case coreLevel = "core_level", cpuLevel = "cpu_level"
    }

    /// The core uses narrower vectors than the CPU has: a generic kernel on a CPU with AVX2, say.
    /// Only an explicit `OPENBLAS_CORETYPE` (or an OpenBLAS another library loaded first) leads here.
    public var belowCPU: Bool { coreLevel < cpuLevel }

    /// The vector level of an OpenBLAS x86-64 core name (case-insensitive, as OpenBLAS reads it).
    public static func level(ofCore name: String) -> VectorLevel {
        switch name.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": .avx512
        case "haswell", "zen": .avx2
        default: .belowAVX2
        }
    }

    /// One line for logs: "OpenBLAS 0.3.21 …, core Cooperlake (AVX-512), chosen by mulan from the CPU's features (AMD EPYC: avx2 fma avx512 avx512_bf16)".
    public var summary: String {
        let how: String
        switch choice {
        case .environment:
            how = "set by OPENBLAS_CORETYPE=\(requested ?? "")"
                + (requested?.lowercased() == core.lowercased() ? "" : ", a core this OpenBLAS does not know, so it detected one")
        case .cpuFeatures: how = "chosen by mulan from the CPU's features"
        case .openBLAS: how = "detected by OpenBLAS"
        }
        let cpu = (cpuModel.isEmpty ? "CPU" : cpuModel) + ": " + (cpuFeatures.isEmpty ? "no AVX2" : cpuFeatures.joined(separator: " "))
        return "\(config), core \(core) (\(coreLevel.label)), \(how) (\(cpu))"
    }

    /// What to tell the user when the core is slower than the CPU allows; nil when it is not.
    public var warning: String? {
        guard belowCPU else { return nil }
        let fix = choice == .environment
            ? "unset OPENBLAS_CORETYPE to let mulan choose \(cpuLevel == .avx512 ? "SkylakeX/Cooperlake" : "Haswell")"
            : "another library in this process loaded OpenBLAS before mulan could choose its core"
        // Measured on a Xeon with AVX-512 (issue 27): sgemm 152 GFLOP/s with SkylakeX's kernels, 75 with
        // Haswell's, 19–27 with Prescott's.
        return "OpenBLAS runs its \(core) kernel (\(coreLevel.label)) on a CPU with \(cpuLevel.label): matrix products can run "
            + "\(coreLevel == .belowAVX2 ? "3–6×" : "up to 2×") slower than this CPU allows; \(fix)"
    }
}

/// Loads OpenBLAS at run time, once, after choosing its core.
///
/// OpenBLAS (a DYNAMIC_ARCH build, as Debian's) picks its kernel family in the library's
/// constructor, from `OPENBLAS_CORETYPE` or else from its table of CPU models: linked normally, it
/// has chosen before `main` runs. So MulanTensor does not link it. On first use it reads the CPU's
/// features; unless the user set `OPENBLAS_CORETYPE`, it sets it to `CPUFeatures.preferredCore`
/// (and `OPENBLAS_NUM_THREADS` to 1, as mulan keeps OpenBLAS single-threaded, so that no idle
/// thread pool starts), `dlopen`s `libopenblas.so.0`, takes `cblas_sgemm` with `dlsym`, and
/// removes the variables it set again, so child processes decide for themselves. The
/// alternative of re-executing the process with the variable set would fix the stages but not
/// the test runner or any other program that links MulanTensor.
///
/// Stages load it at their start (`BLAS.load()`), while one thread runs, because `setenv` is not
/// safe beside a concurrent `getenv`; `BLAS.gemm` loads it on first use otherwise.
enum OpenBLASLibrary {
    /// `cblas_sgemm(order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)`.
    typealias SGEMM = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
                                      UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    typealias SetThreads = @convention(c) (Int32) -> Void
    typealias GetString = @convention(c) () -> UnsafeMutablePointer<CChar>?

    /// CBLAS's enum values.
    static let rowMajor: Int32 = 101, noTrans: Int32 = 111, trans: Int32 = 112

    /// The file names tried, in order: Debian's runtime package (libopenblas0) provides the first.
    static let fileNames = ["libopenblas.so.0", "libopenblas.so"]

    /// What loading found.
    struct Loaded: @unchecked Sendable {  // C function pointers into a library that is never unloaded
        let sgemm: SGEMM
        let core: BLASCore
    }

    static let shared: Result<Loaded, BLASLoadError> = load()

    static func load() -> Result<Loaded, BLASLoadError> {
        let features = CPUFeatures.current
        var setHere: [String] = []
        let userCore = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        var choice = BLASCore.Choice.environment
        if userCore == nil {
            if let preferred = features.preferredCore {
                setenv("OPENBLAS_CORETYPE", preferred, 1)
                setHere.append("OPENBLAS_CORETYPE")
                choice = .cpuFeatures
            } else {
                choice = .openBLAS
            }
        }
        let requested = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        if getenv("OPENBLAS_NUM_THREADS") == nil {
            setenv("OPENBLAS_NUM_THREADS", "1", 1)
            setHere.append("OPENBLAS_NUM_THREADS")
        }
        var handle: UnsafeMutableRawPointer?
        var errors: [String] = []
        for name in fileNames where handle == nil {
            handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)
            if handle == nil { errors.append(dlerror().map { String(cString: $0) } ?? "\(name): not found") }
        }
        for name in setHere { unsetenv(name) }
        guard let handle else {
            return .failure(BLASLoadError("OpenBLAS could not be loaded (\(errors.joined(separator: "; "))); "
                                          + "install Debian's libopenblas0 (apt-get install libopenblas0-pthread), or run scripts/setup.sh"))
        }
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: type) }
        }
        guard let sgemm = symbol("cblas_sgemm", as: SGEMM.self),
              let setThreads = symbol("openblas_set_num_threads", as: SetThreads.self),
              let coreName = symbol("openblas_get_corename", as: GetString.self),
              let configText = symbol("openblas_get_config", as: GetString.self) else {
            return .failure(BLASLoadError("\(fileNames[0]) is not OpenBLAS (it lacks cblas_sgemm or openblas_get_corename); "
                                          + "check which library /etc/alternatives/libopenblas.so.0-* points to"))
        }
        // mulan parallelizes above OpenBLAS (BLAS.parallelGemm, Parallel.forEach).
        setThreads(1)
        var library = fileNames[0]
        if let path = mulan_library_path(unsafeBitCast(sgemm, to: UnsafeRawPointer.self)) {
            library = URL(fileURLWithPath: String(cString: path)).resolvingSymlinksInPath().path
        }
        let name = coreName().map { String(cString: $0) } ?? "unknown"
        let core = BLASCore(
            core: name, requested: requested, choice: choice,
            config: configText().map { String(cString: $0).trimmingCharacters(in: .whitespaces) } ?? "OpenBLAS",
            library: library, cpuModel: cpuModelName(), cpuFeatures: features.names,
            coreLevel: BLASCore.level(ofCore: name), cpuLevel: features.level)
        return .success(Loaded(sgemm: sgemm, core: core))
    }

    /// The first `model name` of /proc/cpuinfo.
    static func cpuModelName() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return ""
    }
}

/// OpenBLAS could not be loaded: the message says why and what to install.
public struct BLASLoadError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
