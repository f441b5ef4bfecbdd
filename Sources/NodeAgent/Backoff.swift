/// Capped exponential backoff with jitter, for every kind of failure the watch loop meets.
///
/// The n-th wait in a row is drawn from [d/2, d] where d = min(maximum, initial × 2ⁿ⁻¹): it
/// grows until something works, and agents that failed together (an API server restart) do
/// not come back together. Only a sign of health (`reset`) starts it over.
public struct Backoff {
    public let initial: Double
    public let maximum: Double
    /// Failures since the last reset.
    public private(set) var failures = 0
    private let random: () -> Double

    /// `random` returns a number in [0, 1) (replaced in tests).
    public init(initial: Double, maximum: Double, random: @escaping () -> Double = { Double.random(in: 0..<1) }) {
        self.initial = min(initial, maximum)
        self.maximum = maximum
        self.random = random
    }

    /// The wait before the next attempt.
    public mutating func next() -> Double {
        defer { failures += 1 }
        return draw(doublings: failures)
    }

    /// The wait before a retry that is worth trying at once the first time (a relist after
    /// 410 Gone): none after a healthy spell, then as `next`, so a storm of them backs off.
    public mutating func nextAfterFreeRetry() -> Double {
        defer { failures += 1 }
        return failures == 0 ? 0 : draw(doublings: failures - 1)
    }

    private func draw(doublings: Int) -> Double {
        var ceiling = initial
        for _ in 0..<min(doublings, 62) where ceiling < maximum { ceiling *= 2 }
        ceiling = min(ceiling, maximum)
        return ceiling / 2 + random() * ceiling / 2
    }

    public mutating func reset() { failures = 0 }
}
