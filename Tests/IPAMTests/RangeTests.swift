import Testing
import Addresses
@testable import IPAM

@Suite struct RangeTests {
    func subnet(_ s: String) -> IPNetwork { IPNetwork(cidr: s)! }

    @Test func defaultsFollowHostLocal() throws {
        let r = try IPRange(subnet: subnet("10.244.1.0/24"))
        #expect(r.rangeStart.description == "10.244.1.1")
        #expect(r.rangeEnd.description == "10.244.1.254")
        #expect(r.gateway?.description == "10.244.1.1")
        #expect(!r.isAssignable(IPAddress("10.244.1.1")!))
        #expect(r.isAssignable(IPAddress("10.244.1.2")!))
    }

    @Test func rejectsHostBitsSmallSubnetsAndOutsideBounds() {
        #expect(throws: IPRange.Error.hostBitsSet(subnet("10.244.1.5/24"))) { try IPRange(subnet: subnet("10.244.1.5/24")) }
        #expect(throws: IPRange.Error.tooSmall(subnet("10.244.1.0/31"))) { try IPRange(subnet: subnet("10.244.1.0/31")) }
        #expect(throws: IPRange.Error.outsideSubnet(field: "rangeStart", IPAddress("10.244.2.1")!, subnet("10.244.1.0/24"))) {
            try IPRange(subnet: subnet("10.244.1.0/24"), rangeStart: IPAddress("10.244.2.1"))
        }
        #expect(throws: IPRange.Error.startAfterEnd(IPAddress("10.244.1.9")!, IPAddress("10.244.1.3")!)) {
            try IPRange(subnet: subnet("10.244.1.0/24"), rangeStart: IPAddress("10.244.1.9"), rangeEnd: IPAddress("10.244.1.3"))
        }
    }

    @Test func rangeSetsRejectOverlapAndMixedFamilies() throws {
        let a = try IPRange(subnet: subnet("10.244.1.0/24"))
        let b = try IPRange(subnet: subnet("10.244.1.0/25"))
        let v6 = try IPRange(subnet: subnet("fd00::/64"))
        #expect(throws: RangeSet.Error.overlapping(a, b)) { try RangeSet([a, b]) }
        #expect(throws: RangeSet.Error.mixedFamilies) { try RangeSet([a, v6]) }
    }

    @Test func assignableCountLeavesOutGatewayNetworkAndBroadcast() throws {
        #expect(try RangeSet([IPRange(subnet: subnet("10.244.1.0/24"))]).assignableCount == 253)
        #expect(try RangeSet([IPRange(subnet: subnet("10.244.1.0/29"))]).assignableCount == 5)
    }
}
