extension Int64 {
    /// `value` toward zero, held within Int64's range; NaN is 0. For a figure worked out from
    /// others to be shown (a rate, an ETA, a percentage), where `Int64(value)` would stop the
    /// program on an infinity or a number past 2^63.
    public init(saturating value: Double) {
        if value.isNaN {
            self = 0
        } else if value >= 9_223_372_036_854_775_807 {  // 2^63, the first Double past Int64.max
            self = .max
        } else if value <= -9_223_372_036_854_775_808 {
            self = .min
        } else {
            self = Int64(value)
        }
    }
}
