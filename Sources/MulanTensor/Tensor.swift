/// A dense, row-major array of `Float` with a shape. A value type: copies share storage until one
/// is written (Swift's array copy-on-write), so passing tensors around costs nothing.
public struct Tensor: Sendable, Equatable {
    public private(set) var shape: [Int]
    public var storage: [Float]

    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        storage = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor whose values the caller overwrites entirely before reading any (skips the zero fill).
    public init(uninitializedShape shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        let n = shape.reduce(1, *)
        storage = [Float](unsafeUninitializedCapacity: n) { _, count in count = n }
    }

    public init(shape: [Int], _ values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.shape = shape
        storage = values
    }

    /// Values drawn from N(0, std²).
    public static func normal(shape: [Int], std: Float, using random: inout RandomSource) -> Tensor {
        var t = Tensor(shape: shape)
        for i in t.storage.indices { t.storage[i] = random.normal() * std }
        return t
    }

    /// Values drawn uniformly from [-bound, bound).
    public static func uniform(shape: [Int], bound: Float, using random: inout RandomSource) -> Tensor {
        var t = Tensor(shape: shape)
        for i in t.storage.indices { t.storage[i] = (random.unitFloat() * 2 - 1) * bound }
        return t
    }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }

    /// The same values under another shape with as many elements.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        var t = self
        t.shape = newShape
        return t
    }

    public subscript(flat i: Int) -> Float {
        get { storage[i] }
        set { storage[i] = newValue }
    }

    public func withUnsafePointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    public mutating func withUnsafeMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try storage.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }

    /// Adds `other` element-wise (shapes must hold as many elements).
    public mutating func add(_ other: Tensor, scale: Float = 1) {
        precondition(other.count == count, "cannot add \(other.shape) to \(shape)")
        for i in storage.indices { storage[i] += scale * other.storage[i] }
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        var r = a
        r.add(b)
        return r
    }

    public func sum() -> Double { storage.reduce(0.0) { $0 + Double($1) } }
}
