import Dispatch
import Foundation
import Synchronization
internal import CMulanOpenBLAS

/// Matrix products through OpenBLAS (`cblas_sgemm`, row-major), and the thread count every
/// kernel of this module uses.
///
/// OpenBLAS is loaded at run time with the core (kernel family) chosen from the CPU's features
/// (`OpenBLASLibrary`, `core`). Its own threading is off: mulan parallelizes above it, over rows or
/// over the batch, so that concurrent calls never contend for OpenBLAS's thread pool, and every
/// split is fixed by the shapes alone, never by the thread count, so results do not depend on
/// `threads` on any core (`parallelGemm`).
public enum BLAS {
    /// Atomic: a setting read by every kernel, which tests running side by side change.
    private static let threadCount = Atomic<Int>(1)

    /// The number of threads kernels use (at least 1). Call before training starts.
    public static var threads: Int {
        get { threadCount.load(ordering: .relaxed) }
        set { threadCount.store(max(1, newValue), ordering: .relaxed) }
    }

    /// Loads OpenBLAS (once) and returns the core it runs. Stages call this at their start, before
    /// other threads run (`OpenBLASLibrary`); the first product loads it otherwise.
    @discardableResult
    public static func load() throws(BLASLoadError) -> BLASCore {
        try OpenBLASLibrary.shared.get().core
    }

    /// The loaded library's `cblas_sgemm`; a library that cannot be loaded stops the process with
    /// the loader's message (stages have reported it as an error through `load()` before).
    private static var sgemm: OpenBLASLibrary.SGEMM {
        switch OpenBLASLibrary.shared {
        case .success(let loaded): return loaded.sgemm
        case .failure(let error): fatalError("mulan: \(error)")
        }
    }

    /// C = alpha · op(A) · op(B) + beta · C, row-major, on the calling thread (`cblas_sgemm`).
    /// op(A) is m×k, op(B) is k×n, C is m×n.
    @inline(__always)
    public static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        let start = Profiler.now()
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
        } else {
            let no = OpenBLASLibrary.noTrans, yes = OpenBLASLibrary.trans
            sgemm(OpenBLASLibrary.rowMajor, transA ? yes : no, transB ? yes : no,
                  Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
        Profiler.add(.gemm, since: start)
    }

    /// The same product with the rows of C split over `threads` threads (for large m).
    public static func parallelGemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                                    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                                    b: UnsafePointer<Float>, ldb: Int,
                                    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        parallelGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                     beta: beta, c: c, ldc: ldc, prepare: { _, _ in })
    }

    /// The same, calling `prepare(rows, columns)` on the thread that computes that block of C just
    /// before its product (to fill it with a bias, say, in parallel and while it is in cache).
    ///
    /// With `splitColumns`, C's columns are split instead of its rows when op(B) is wider than op(A)
    /// is tall: each thread packs its part of one operand and all of the other, so splitting the
    /// side of the larger operand packs less twice (a [rows, 384] input times a [1536, 384] weight,
    /// say). Either way the split never cuts k.
    ///
    /// The blocks depend on the shapes alone (`gemmBlocks`), and each is one `cblas_sgemm` call on
    /// one thread whatever `threads` is: one thread runs them one after another, two take half each.
    /// So the result does not depend on the thread count on any OpenBLAS core. (Splitting by the
    /// thread count does not keep that: an element's sum then depends on where its block starts,
    /// through edge tiles and small-matrix paths — measured on OpenBLAS 0.3.21's Prescott, Haswell
    /// and SkylakeX kernels even at block edges aligned to 64.) The price on one thread is packing
    /// the shared operand once per block: 3–15 % of a product of 256 rows or more, measured by
    /// bench/gemm-blocks.sh (docs/benchmarks.md); a training step did not move measurably.
    public static func parallelGemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                                    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                                    b: UnsafePointer<Float>, ldb: Int,
                                    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, splitColumns: Bool = false,
                                    prepare: (_ rows: Range<Int>, _ columns: Range<Int>) -> Void) {
        let byColumns = splitColumns && n > m
        let parts = m * n * k < 1 << 18 ? 1 : gemmBlocks(byColumns ? n : m)
        if parts <= 1 {
            prepare(0..<m, 0..<n)
            gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                 b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        if byColumns {
            // Columns in multiples of 16, so that every part but the last fills whole kernel tiles.
            let per = (n + parts - 1) / parts, columnsPer = (per + 15) / 16 * 16
            Parallel.forEach(parts) { p in
                let j0 = p * columnsPer, j1 = min(n, j0 + columnsPer)
                guard j0 < j1 else { return }
                prepare(0..<m, j0..<j1)
                // Column j of op(B): B[j, :] when transposed, column j of B (offset j) otherwise.
                let bColumns = transB ? b + j0 * ldb : b + j0
                gemm(transA: transA, transB: transB, m: m, n: j1 - j0, k: k, alpha: alpha, a: a, lda: lda,
                     b: bColumns, ldb: ldb, beta: beta, c: c + j0, ldc: ldc)
            }
            return
        }
        let rowsPer = (m + parts - 1) / parts
        Parallel.forEach(parts) { p in
            let r0 = p * rowsPer, r1 = min(m, r0 + rowsPer)
            guard r0 < r1 else { return }
            prepare(r0..<r1, 0..<n)
            // Row r of op(A): A[r, :] when not transposed, column r of A (offset r) when transposed.
            let aRows = transA ? a + r0 : a + r0 * lda
            gemm(transA: transA, transB: transB, m: r1 - r0, n: n, k: k, alpha: alpha, a: aRows, lda: lda,
                 b: b, ldb: ldb, beta: beta, c: c + r0 * ldc, ldc: ldc)
        }
    }
}

extension BLAS {
    /// At most this many blocks per product: up to 8 threads share a product's work.
    public static let maxGemmBlocks = 8

    /// How many blocks `parallelGemm` cuts a side of `extent` rows or columns into: a power of two
    /// (so that 2, 4 or 8 threads get equal shares), at most `maxGemmBlocks`, each at least 32 long.
    public static func gemmBlocks(_ extent: Int) -> Int {
        var blocks = 1
        while blocks * 2 <= maxGemmBlocks && extent / (blocks * 2) >= 32 { blocks *= 2 }
        return blocks
    }
}

/// Runs `body(i)` for i in 0..<n on up to `BLAS.threads` threads (`DispatchQueue.concurrentPerform`);
/// runs inline when there is one thread or one item.
public enum Parallel {
    public static func forEach(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        let t = BLAS.threads
        if t <= 1 || n == 1 {
            for i in 0..<n { body(i) }
            return
        }
        // Chunk so that each thread takes contiguous items; concurrentPerform does the scheduling.
        let chunks = min(n, t)
        let per = (n + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            let box = UnsafeBody(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * per, hi = min(n, lo + per)
                if lo < hi { for i in lo..<hi { box.body(i) } }
            }
        }
    }

    /// Lets a non-Sendable closure run inside `concurrentPerform`: the callers hand it disjoint
    /// index ranges, so its writes never overlap.
    private struct UnsafeBody: @unchecked Sendable {
        let body: (Int) -> Void
        init(_ body: @escaping (Int) -> Void) { self.body = body }
    }
}

extension Tensor {
    /// Every training step allocates and frees the same large activation buffers. glibc serves
    /// those with mmap and unmaps them on free, so the kernel zero-fills fresh pages every step
    /// (13–20% of a step, measured). This keeps large blocks on the heap and never trims it, so the
    /// buffers are reused; the process then keeps its peak memory until it exits, which suits a
    /// trainer. Call once, early (`mallopt`), before other threads allocate.
    ///
    /// Those two settings govern glibc's main arena only. A thread's first allocation binds it to
    /// an arena, and threads other than the main one get secondary arenas, which grow by mapping
    /// 64 MiB heaps, map blocks larger than a heap whatever `M_MMAP_MAX` says, and unmap heaps
    /// that empty. `M_ARENA_MAX` 1 binds every thread that allocates afterwards (the Swift
    /// concurrency thread the trainer runs on, the data-loading workers) to the main arena.
    public static func keepFreedMemory() {
        _ = mallopt(M_ARENA_MAX, 1)
        _ = mallopt(M_MMAP_MAX, 0)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
    }
}
