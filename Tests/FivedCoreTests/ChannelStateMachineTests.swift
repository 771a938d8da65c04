import Testing
@testable import FivedCore

/// One test per transition of the channel state machine, legal and illegal.
@Suite("Channel state machine")
struct ChannelStateMachineTests {
    typealias Machine = ChannelStateMachine

    /// A session channel whose service is attached (a socket backend unless `awaitsExit`).
    func relaying(session: Bool = true, awaitsExit: Bool = false) throws -> Machine {
        var m = Machine(phase: .awaitingRequest, reportsExit: session)
        _ = try m.handle(.attached(awaitsExit: awaitsExit))
        return m
    }

    // MARK: Starting

    @Test func awaitingRequestThenConnecting() throws {
        var m = Machine(phase: .awaitingRequest, reportsExit: true)
        #expect(try m.handle(.connecting) == [])
        #expect(m.phase == .connecting)
    }

    @Test func awaitingRequestThenAttached() throws {
        var m = Machine(phase: .awaitingRequest, reportsExit: true)
        #expect(try m.handle(.attached(awaitsExit: false)) == [])
        #expect(m.phase == .relaying)
        #expect(m.inbound == .open && m.outbound == .open)
    }

    @Test func connectingThenAttached() throws {
        var m = Machine(phase: .connecting, reportsExit: false)
        #expect(try m.handle(.attached(awaitsExit: true)) == [])
        #expect(m.phase == .relaying)
    }

    @Test func awaitingRequestThenAnswering() throws {
        var m = Machine(phase: .awaitingRequest, reportsExit: true)
        #expect(try m.handle(.answering(exit: .status(1))) == [])
        #expect(m.phase == .answering)
        #expect(m.outbound == .ending && m.inbound == .ended)
        #expect(m.exit == .status(1))
    }

    @Test func connectingThenAnswering() throws {
        var m = Machine(phase: .connecting, reportsExit: true)
        _ = try m.handle(.answering(exit: .status(0)))
        #expect(m.phase == .answering)
    }

    @Test func connectingTwiceIsOurBug() throws {
        var m = Machine(phase: .connecting, reportsExit: true)
        #expect(throws: Machine.Violation.self) { try m.handle(.connecting) }
    }

    @Test func attachedWhileRelayingIsOurBug() throws {
        var m = try relaying()
        #expect {
            try m.handle(.attached(awaitsExit: false))
        } throws: { ($0 as? Machine.Violation)?.isPeerViolation == false }
    }

    @Test func answeringWhileRelayingIsOurBug() throws {
        var m = try relaying()
        #expect(throws: Machine.Violation.self) { try m.handle(.answering(exit: .status(0))) }
    }

    @Test func attachedAfterFinishIsOurBug() throws {
        var m = try relaying()
        _ = try m.handle(.abort(.sshWriteError))
        #expect(throws: Machine.Violation.self) { try m.handle(.attached(awaitsExit: false)) }
    }

    // MARK: The peer's data

    @Test func dataBeforeTheRequestIsLeftWithLibssh() throws {
        var m = Machine(phase: .awaitingRequest, reportsExit: true)
        #expect(try m.handle(.peerData) == [.leave])
        _ = try m.handle(.connecting)
        #expect(try m.handle(.peerData) == [.leave])
    }

    @Test func dataWhileRelayingIsDelivered() throws {
        var m = try relaying()
        #expect(try m.handle(.peerData) == [.deliver])
    }

    @Test func dataAfterTheServiceStoppedReadingIsDiscarded() throws {
        var m = try relaying()
        _ = try m.handle(.inboundAbandoned(failure: nil))
        #expect(m.inbound == .abandoned)
        #expect(try m.handle(.peerData) == [.discard])
    }

    @Test func dataToAnAnswerIsDiscarded() throws {
        var m = Machine(phase: .awaitingRequest, reportsExit: true)
        _ = try m.handle(.answering(exit: .status(0)))
        #expect(try m.handle(.peerData) == [.discard])
    }

    @Test func dataAfterOurCloseIsLeftUnread() throws {
        var m = try relaying()
        #expect(try m.handle(.abort(.sshWriteError)) == [.sendClose, .release(.sshWriteError)])
        // In flight when CLOSE went: not a violation, but never read (no window adjust after CLOSE).
        #expect(try m.handle(.peerData) == [.leave])
    }

    // MARK: The peer's EOF

    @Test func eofWhileRelayingStartsDelivering() throws {
        var m = try relaying()
        #expect(try m.handle(.peerEOF) == [])
        #expect(m.inbound == .ending)
        #expect(try m.handle(.inboundDelivered) == [.shutdownLocalInput])
        #expect(m.inbound == .ended)
    }

    @Test func eofBeforeTheRequestIsDeliveredOnceAttached() throws {
        var m = Machine(phase: .awaitingRequest, reportsExit: true)
        _ = try m.handle(.peerEOF)
        #expect(m.inbound == .ending)
        _ = try m.handle(.attached(awaitsExit: false))
        #expect(try m.handle(.inboundDelivered) == [.shutdownLocalInput])
    }

    @Test func eofToAnAnswerEndsInbound() throws {
        var m = Machine(phase: .awaitingRequest, reportsExit: true)
        _ = try m.handle(.answering(exit: .status(0)))
        _ = try m.handle(.peerEOF)
        #expect(m.inbound == .ended)
    }

    @Test func eofAfterOurCloseIsIgnored() throws {
        var m = try relaying()
        _ = try m.handle(.abort(.stopping))
        #expect(try m.handle(.peerEOF) == [])
    }

    // MARK: The peer's CLOSE

    @Test func closeWithBytesUndeliveredDrains() throws {
        var m = try relaying()
        #expect(try m.handle(.peerClose(undelivered: true, now: 1000)) == [])
        #expect(m.phase == .draining(deadline: 1000 + Machine.drainMilliseconds))
        #expect(m.inbound == .ending)
    }

    @Test func closeWithEverythingDeliveredEndsAtOnce() throws {
        var m = try relaying()
        #expect(
            try m.handle(.peerClose(undelivered: false, now: 0))
                == [.shutdownLocalInput, .sendClose, .release(.peerClosed)])
        #expect(m.closeSent && !m.maySend)
    }

    @Test func closeAfterOurEOFIsANormalEnd() throws {
        var m = try relaying(session: false)
        _ = try m.handle(.outboundEnded(failure: nil))
        _ = try m.handle(.outboundDelivered)
        #expect(try m.handle(.peerClose(undelivered: false, now: 0)) == [.shutdownLocalInput, .sendClose, .release(.closed)])
    }

    @Test func closeBeforeTheRequestEnds() throws {
        var m = Machine(phase: .awaitingRequest, reportsExit: true)
        #expect(try m.handle(.peerClose(undelivered: false, now: 0)) == [.sendClose, .release(.peerClosed)])
    }

    @Test func closeWhileConnectingEnds() throws {
        var m = Machine(phase: .connecting, reportsExit: true)
        #expect(try m.handle(.peerClose(undelivered: true, now: 0)) == [.sendClose, .release(.peerClosed)])
    }

    @Test func closeDuringAnAnswerEnds() throws {
        var m = Machine(phase: .awaitingRequest, reportsExit: true)
        _ = try m.handle(.answering(exit: .status(0)))
        #expect(try m.handle(.peerClose(undelivered: false, now: 0)) == [.sendClose, .release(.peerClosed)])
    }

    @Test func closeAfterOurCloseCompletesQuietly() throws {
        var m = try relaying()
        _ = try m.handle(.abort(.stopping))
        #expect(try m.handle(.peerClose(undelivered: true, now: 0)) == [])
    }

    // MARK: Draining

    @Test func drainingEndsWhenTheLastBytesAreDelivered() throws {
        var m = try relaying()
        _ = try m.handle(.peerClose(undelivered: true, now: 0))
        #expect(try m.handle(.inboundDelivered) == [.shutdownLocalInput, .sendClose, .release(.peerClosed)])
    }

    @Test func drainingEndsWhenTheServiceStopsReading() throws {
        var m = try relaying()
        _ = try m.handle(.peerClose(undelivered: true, now: 0))
        #expect(try m.handle(.inboundAbandoned(failure: nil)) == [.sendClose, .release(.peerClosed)])
    }

    @Test func drainingWaitsUntilItsDeadline() throws {
        var m = try relaying()
        _ = try m.handle(.peerClose(undelivered: true, now: 0))
        #expect(try m.handle(.tick(now: Machine.drainMilliseconds - 1)) == [])
        #expect(try m.handle(.tick(now: Machine.drainMilliseconds)) == [.sendClose, .release(.peerClosedUndelivered)])
    }

    @Test func tickOutsideDrainingDoesNothing() throws {
        var m = try relaying()
        #expect(try m.handle(.tick(now: .max)) == [])
    }

    // MARK: Requests

    @Test func requestsAreAnsweredWhileOpen() throws {
        var m = Machine(phase: .awaitingRequest, reportsExit: true)
        #expect(try m.handle(.peerRequest) == [.reply])
        _ = try m.handle(.attached(awaitsExit: false))
        _ = try m.handle(.peerEOF)
        #expect(try m.handle(.peerRequest) == [.reply])
    }

    @Test func requestsAfterOurCloseGetNoReply() throws {
        var m = try relaying()
        _ = try m.handle(.abort(.stopping))
        #expect(try m.handle(.peerRequest) == [])
    }

    // MARK: Protocol violations

    /// After `first` on a relaying channel, the peer's `then` is the protocol violation `violation`.
    @Test(
        arguments: [
            (.peerEOF, .peerData, .dataAfterEOF),
            (.peerClose(undelivered: true, now: 0), .peerData, .dataAfterClose),
            (.peerEOF, .peerEOF, .secondEOF),
            (.peerClose(undelivered: false, now: 0), .peerEOF, .eofAfterClose),
            (.peerClose(undelivered: true, now: 0), .peerClose(undelivered: true, now: 0), .secondClose),
            (.peerClose(undelivered: true, now: 0), .peerRequest, .requestAfterClose),
        ] as [(first: Machine.Event, then: Machine.Event, violation: Machine.Violation)])
    func violation(_ transition: (first: Machine.Event, then: Machine.Event, violation: Machine.Violation)) throws {
        var m = try relaying()
        _ = try m.handle(transition.first)
        #expect { try m.handle(transition.then) } throws: { ($0 as? Machine.Violation) == transition.violation }
    }

    // MARK: The local end

    @Test func inboundDeliveredWithoutEOFIsOurBug() throws {
        var m = try relaying()
        #expect(throws: Machine.Violation.self) { try m.handle(.inboundDelivered) }
    }

    @Test func inboundAbandonedRecordsTheFailureAsTheReason() throws {
        var m = try relaying(session: false)
        _ = try m.handle(.inboundAbandoned(failure: .localWriteError("No space left on device")))
        _ = try m.handle(.outboundEnded(failure: nil))
        #expect(try m.handle(.outboundDelivered) == [.sendEOF, .sendClose, .release(.localWriteError("No space left on device"))])
    }

    @Test func inboundAbandonedTwiceIsHarmless() throws {
        var m = try relaying()
        _ = try m.handle(.inboundAbandoned(failure: nil))
        #expect(try m.handle(.inboundAbandoned(failure: .sshWriteError)) == [])
    }

    @Test func outboundEndedTwiceIsOurBug() throws {
        var m = try relaying()
        _ = try m.handle(.outboundEnded(failure: nil))
        #expect(throws: Machine.Violation.self) { try m.handle(.outboundEnded(failure: nil)) }
    }

    @Test func outboundDeliveredBeforeItsEndIsOurBug() throws {
        var m = try relaying()
        #expect(throws: Machine.Violation.self) { try m.handle(.outboundDelivered) }
    }

    // MARK: Exit status and completion

    @Test func socketServiceOnASessionChannelExitsZeroBeforeEOF() throws {
        var m = try relaying()
        _ = try m.handle(.peerEOF)
        _ = try m.handle(.inboundDelivered)
        _ = try m.handle(.outboundEnded(failure: nil))
        #expect(try m.handle(.outboundDelivered) == [.sendExit(.status(0)), .sendEOF, .sendClose, .release(.closed)])
    }

    @Test func aBackendReadErrorExitsOne() throws {
        var m = try relaying()
        _ = try m.handle(.inboundAbandoned(failure: nil))
        _ = try m.handle(.outboundEnded(failure: .localReadError("Connection reset by peer")))
        #expect(
            try m.handle(.outboundDelivered)
                == [.sendExit(.status(1)), .sendEOF, .sendClose, .release(.localReadError("Connection reset by peer"))])
    }

    @Test func directChannelsReportNoExit() throws {
        var m = try relaying(session: false)
        _ = try m.handle(.peerEOF)
        _ = try m.handle(.inboundDelivered)
        _ = try m.handle(.outboundEnded(failure: nil))
        #expect(try m.handle(.outboundDelivered) == [.sendEOF, .sendClose, .release(.closed)])
    }

    @Test func aProcessThatExitedBeforeItsOutputEndedReportsBeforeEOF() throws {
        var m = try relaying(awaitsExit: true)
        #expect(try m.handle(.processExited(.status(3))) == [])
        _ = try m.handle(.outboundEnded(failure: nil))
        // The process is gone: its input no longer matters.
        #expect(try m.handle(.outboundDelivered) == [.sendExit(.status(3)), .sendEOF, .sendClose, .release(.closed)])
    }

    @Test func aProcessThatExitsAfterItsOutputEndedReportsAfterEOF() throws {
        var m = try relaying(awaitsExit: true)
        _ = try m.handle(.outboundEnded(failure: nil))
        #expect(try m.handle(.outboundDelivered) == [.sendEOF])
        #expect(try m.handle(.processExited(.signal("KILL"))) == [.sendExit(.signal("KILL")), .sendClose, .release(.closed)])
    }

    @Test func aProcessWaitsForItsExitEvenWhenBothStreamsEnded() throws {
        var m = try relaying(awaitsExit: true)
        _ = try m.handle(.peerEOF)
        _ = try m.handle(.inboundDelivered)
        _ = try m.handle(.outboundEnded(failure: nil))
        #expect(try m.handle(.outboundDelivered) == [.sendEOF])
        #expect(!m.closeSent)
    }

    /// PuTTY and Dropbear send CLOSE after their EOF without waiting for the
    /// exit status; sshd still sends it, before its own CLOSE.
    @Test func aPeerCloseBeforeTheExitWaitsForTheExitAndReportsIt() throws {
        var m = try relaying(awaitsExit: true)
        _ = try m.handle(.outboundEnded(failure: nil))
        #expect(try m.handle(.outboundDelivered) == [.sendEOF])
        #expect(try m.handle(.peerClose(undelivered: false, now: 0)) == [.shutdownLocalInput])
        #expect(m.drainDeadline == Machine.drainMilliseconds && m.outbound != .open)
        #expect(try m.handle(.processExited(.status(3))) == [.sendExit(.status(3)), .sendClose, .release(.closed)])
    }

    @Test func aPeerCloseWithOutputStillFlowingStopsTheOutputAndWaitsForTheExit() throws {
        var m = try relaying(awaitsExit: true)
        #expect(try m.handle(.peerClose(undelivered: true, now: 10)) == [])
        #expect(m.outbound == .abandoned && m.inbound == .ending)
        // The output's end and the program's exit may still be reported: nothing is sent for them but the exit.
        #expect(try m.handle(.outboundEnded(failure: nil)) == [])
        #expect(try m.handle(.outboundDelivered) == [])
        #expect(try m.handle(.processExited(.signal("PIPE"))) == [])  // the peer's last bytes are still on their way
        #expect(try m.handle(.inboundDelivered) == [.shutdownLocalInput, .sendExit(.signal("PIPE")), .sendClose, .release(.peerClosed)])
    }

    @Test func aProgramThatOutlivesThePeersCloseEndsAtTheDrainDeadlineWithoutAnExit() throws {
        var m = try relaying(awaitsExit: true)
        _ = try m.handle(.peerClose(undelivered: false, now: 0))
        #expect(try m.handle(.tick(now: Machine.drainMilliseconds - 1)) == [])
        #expect(try m.handle(.tick(now: Machine.drainMilliseconds)) == [.sendClose, .release(.peerClosed)])
        #expect(!m.exitSent)
    }

    @Test func aSocketServiceWaitsForTheClientsEOF() throws {
        var m = try relaying(session: false)
        _ = try m.handle(.outboundEnded(failure: nil))
        #expect(try m.handle(.outboundDelivered) == [.sendEOF])
        #expect(!m.closeSent)
        _ = try m.handle(.peerEOF)
        #expect(try m.handle(.inboundDelivered) == [.shutdownLocalInput, .sendClose, .release(.closed)])
    }

    @Test func anAnswerSendsItsExitThenEOFThenClose() throws {
        var m = Machine(phase: .awaitingRequest, reportsExit: true)
        _ = try m.handle(.answering(exit: .status(1)))
        #expect(try m.handle(.outboundDelivered) == [.sendExit(.status(1)), .sendEOF, .sendClose, .release(.closed)])
    }

    @Test func exitIsReportedOnce() throws {
        var m = try relaying(awaitsExit: true)
        _ = try m.handle(.processExited(.status(0)))
        _ = try m.handle(.processExited(.status(9)))
        _ = try m.handle(.outboundEnded(failure: nil))
        let actions = try m.handle(.outboundDelivered)
        #expect(actions.filter { if case .sendExit = $0 { return true } else { return false } } == [.sendExit(.status(0))])
    }

    // MARK: Aborting

    @Test func abortClosesOnceWithItsReason() throws {
        var m = try relaying()
        #expect(try m.handle(.abort(.connectionEnded(.stopping))) == [.sendClose, .release(.connectionEnded(.stopping))])
        #expect(m.phase == .finished(.connectionEnded(.stopping)))
        #expect(try m.handle(.abort(.sshWriteError)) == [])
    }

    @Test func nothingIsSentAfterClose() throws {
        var m = try relaying(awaitsExit: true)
        _ = try m.handle(.abort(.channelGone))
        // Whatever the local end reports afterwards, no action sends anything.
        for event: Machine.Event in [
            .inboundAbandoned(failure: nil), .outboundEnded(failure: nil), .processExited(.status(0)),
            .tick(now: .max), .peerRequest, .peerData, .peerEOF,
        ] {
            let actions = try m.handle(event)
            #expect(!actions.contains(.sendEOF) && !actions.contains(.sendClose) && !actions.contains(.reply), "\(event)")
            #expect(!actions.contains { if case .sendExit = $0 { return true } else { return false } }, "\(event)")
        }
    }
}
