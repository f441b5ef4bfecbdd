/// What `/metrics` reports, in the Prometheus text format (version 0.0.4), written by hand: the
/// agent has nine series, which do not justify swift-metrics and swift-prometheus (two packages,
/// Foundation-free but a second concurrency model, for a single-threaded loop).
public struct AgentMetrics {
    public var routesDesired = 0
    public var routesInstalled = 0
    public var routesFailed = 0
    public var nodesSeen = 0
    public var ready = false
    /// Wall-clock seconds of the last sync that applied every route (0: none yet).
    public var lastSuccessfulSync = 0.0
    public var lists = 0
    public var watchRestarts = 0
    public var apiErrors: [String: Int] = [:]
    public var syncDurations = Histogram(bounds: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])

    public init() {}

    public struct Histogram {
        public let bounds: [Double]
        public private(set) var counts: [Int]
        public private(set) var sum = 0.0
        public private(set) var count = 0
        public init(bounds: [Double]) {
            self.bounds = bounds
            counts = Array(repeating: 0, count: bounds.count)
        }
        public mutating func observe(_ value: Double) {
            for (i, bound) in bounds.enumerated() where value <= bound { counts[i] += 1 }
            sum += value
            count += 1
        }
    }

    public func render() -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        func sample(_ name: String, _ value: String, _ labels: String = "") {
            out += "\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(value)\n"
        }
        family("bridge_ipam_routes_desired", "gauge", "Routes to other nodes' pod subnets that the Nodes in the API call for.")
        sample("bridge_ipam_routes_desired", "\(routesDesired)")
        family("bridge_ipam_routes_installed", "gauge", "Desired routes present in the routing table after the last sync.")
        sample("bridge_ipam_routes_installed", "\(routesInstalled)")
        family("bridge_ipam_routes_failed", "gauge", "Desired routes the last sync could not install.")
        sample("bridge_ipam_routes_failed", "\(routesFailed)")
        family("bridge_ipam_nodes_seen", "gauge", "Nodes in the agent's picture of the API.")
        sample("bridge_ipam_nodes_seen", "\(nodesSeen)")
        family("bridge_ipam_ready", "gauge", "1 when /readyz answers 200.")
        sample("bridge_ipam_ready", ready ? "1" : "0")
        family(
            "bridge_ipam_last_successful_sync_timestamp_seconds", "gauge",
            "Unix time of the last sync that applied every route (0: none yet).")
        sample("bridge_ipam_last_successful_sync_timestamp_seconds", AgentMetrics.number(lastSuccessfulSync))
        family("bridge_ipam_node_lists_total", "counter", "Complete lists of the Nodes (the first, and one after every 410 Gone).")
        sample("bridge_ipam_node_lists_total", "\(lists)")
        family("bridge_ipam_watch_restarts_total", "counter", "Watches of the Nodes opened after the first.")
        sample("bridge_ipam_watch_restarts_total", "\(watchRestarts)")
        family(
            "bridge_ipam_api_errors_total", "counter",
            "Failed API requests and ERROR watch events, by HTTP status (transport: no response).")
        for code in apiErrors.keys.sorted() { sample("bridge_ipam_api_errors_total", "\(apiErrors[code]!)", "code=\"\(code)\"") }
        family("bridge_ipam_sync_duration_seconds", "histogram", "Time to make the subnet file and routes match the picture.")
        for (bound, count) in zip(syncDurations.bounds, syncDurations.counts) {
            sample("bridge_ipam_sync_duration_seconds_bucket", "\(count)", "le=\"\(AgentMetrics.number(bound))\"")
        }
        sample("bridge_ipam_sync_duration_seconds_bucket", "\(syncDurations.count)", "le=\"+Inf\"")
        sample("bridge_ipam_sync_duration_seconds_sum", AgentMetrics.number(syncDurations.sum))
        sample("bridge_ipam_sync_duration_seconds_count", "\(syncDurations.count)")
        return out
    }

    /// A number as Prometheus reads it: integral values without a fraction, others with up to
    /// 6 decimals (no exponent).
    static func number(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return "\(Int64(value))" }
        let micros = Int64((value * 1e6).rounded())
        let whole = micros / 1_000_000
        var fraction = "\(abs(micros % 1_000_000))"
        while fraction.count < 6 { fraction = "0" + fraction }
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(whole).\(fraction)"
    }
}
