/// A learnable (or tracked) tensor with its gradient. Gradients accumulate (`+=`) in backward
/// passes; the trainer zeroes them before each step.
public final class Parameter {
    /// Every write (assignment, or a change in place through this property) bumps `version`.
    public var value: Tensor { didSet { version &+= 1 } }
    /// Changes with every write to `value`: lets derived data (a fused weight for inference, say)
    /// know when it is stale.
    public private(set) var version = 0
    public var grad: Tensor
    /// False for state that is saved with the model but not optimized (batch-norm running statistics).
    public let trainable: Bool
    /// Whether AdamW's weight decay applies (off for biases, norms and temperatures by convention).
    public let decays: Bool

    public init(_ value: Tensor, trainable: Bool = true, decays: Bool = true) {
        self.value = value
        grad = Tensor(shape: value.shape)
        self.trainable = trainable
        self.decays = decays && trainable
    }

    public func zeroGrad() {
        for i in grad.storage.indices { grad.storage[i] = 0 }
    }
}

/// A layer or a model: owns parameters under stable, dotted names ("blocks.0.conv1.weight").
///
/// Layers follow one convention: `forward(_:training:)` computes the output and keeps what the
/// backward pass needs; `backward(_:)` takes the gradient of the loss with respect to that output,
/// adds the parameter gradients into `Parameter.grad` and returns the gradient with respect to the
/// input. One backward per forward.
public protocol Module: AnyObject {
    /// Every parameter, in a fixed order, with its name relative to this module.
    var namedParameters: [(name: String, parameter: Parameter)] { get }
}

extension Module {
    public var parameters: [Parameter] { namedParameters.map(\.parameter) }

    /// `child`'s parameters under `prefix.`.
    public func nest(_ prefix: String, _ child: any Module) -> [(name: String, parameter: Parameter)] {
        child.namedParameters.map { (prefix + "." + $0.name, $0.parameter) }
    }

    public func zeroGrads() { for p in parameters { p.zeroGrad() } }

    /// Number of trainable scalars.
    public var parameterCount: Int { parameters.filter(\.trainable).reduce(0) { $0 + $1.value.count } }
}
