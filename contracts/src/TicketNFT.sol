// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title TicketNFT: event tickets as ERC-721 tokens, with a primary sale and a resale market.
/// @notice An organiser creates an event; buyers mint tickets at face value until the event starts;
/// holders list tickets for resale and buyers pay the asking price. Sale proceeds are credited to the
/// seller and withdrawn by them (pull payments), so no sale ever sends ether to an unknown contract.
/// Every sale, resale and plain transfer emits an event carrying the event id, so an indexer never has
/// to call back into the contract to know which event a ticket belongs to.
/// @dev Compiled for the Cancun EVM: the reentrancy guard lives in transient storage (EIP-1153).
contract TicketNFT is ERC721, ReentrancyGuardTransient {
    /// Prices are whole multiples of 10 gwei (1e-8 ether), so every price is exact at 8 decimal places,
    /// the precision the off-chain ledger stores.
    uint256 public constant PRICE_UNIT = 1e10;
    /// Bounds that keep every logged value representable off chain (Decimal(18, 8) money, 32-bit
    /// capacity, calendar dates) even though anyone may create an event.
    uint256 public constant MAX_PRICE = 1e9 ether;
    uint32 public constant MAX_CAPACITY = 10_000_000;
    uint64 public constant MAX_LEAD_TIME = 10 * 365 days;

    struct TicketEvent {
        address organizer;
        uint64 onSaleAt;
        uint64 startsAt;
        uint32 capacity;
        uint32 sold;
        uint256 faceValue;
    }

    struct Listing {
        address seller;
        uint256 price;
    }

    uint256 public eventCount;
    uint256 public ticketCount;
    mapping(uint256 eventId => TicketEvent) public ticketEvents;
    mapping(uint256 tokenId => uint256 eventId) public eventOf;
    mapping(uint256 tokenId => Listing) public listings;
    mapping(address payee => uint256 amount) public pendingWithdrawals;

    event EventCreated(
        uint256 indexed eventId,
        address indexed organizer,
        uint256 capacity,
        uint256 faceValue,
        uint64 onSaleAt,
        uint64 startsAt
    );
    event TicketSold(
        uint256 indexed eventId, uint256 indexed tokenId, address indexed buyer, address seller, uint256 price
    );
    event TicketListed(uint256 indexed eventId, uint256 indexed tokenId, address indexed seller, uint256 price);
    event ListingCancelled(uint256 indexed eventId, uint256 indexed tokenId, address indexed seller);
    event TicketResold(
        uint256 indexed eventId, uint256 indexed tokenId, address indexed buyer, address seller, uint256 price
    );
    /// A transfer outside the market (gift, off-platform sale): the price, if any, is not on chain.
    event TicketTransferred(uint256 indexed eventId, uint256 indexed tokenId, address indexed to, address from);
    event Withdrawal(address indexed payee, uint256 amount);

    error InvalidCapacity(uint256 capacity);
    error InvalidSchedule(uint64 onSaleAt, uint64 startsAt);
    error PriceNotWholeUnit(uint256 price, uint256 unit);
    error PriceTooHigh(uint256 price, uint256 max);
    error UnknownEvent(uint256 eventId);
    error NotOnSale(uint256 eventId, uint64 onSaleAt, uint256 now_);
    error EventStarted(uint256 eventId, uint64 startsAt);
    error SoldOut(uint256 eventId, uint32 capacity);
    error WrongPayment(uint256 expected, uint256 sent);
    error NotTicketOwner(uint256 tokenId, address caller);
    error NotListed(uint256 tokenId);
    error ZeroPrice();
    error NothingToWithdraw(address payee);
    error WithdrawalFailed(address payee, uint256 amount);

    constructor() ERC721("TicketGuard Ticket", "TGT") {}

    /// @notice Create an event; the caller is its organiser and receives the primary-sale proceeds.
    function createEvent(uint32 capacity, uint256 faceValue, uint64 onSaleAt, uint64 startsAt)
        external
        returns (uint256 eventId)
    {
        if (capacity == 0 || capacity > MAX_CAPACITY) revert InvalidCapacity(capacity);
        if (onSaleAt >= startsAt || startsAt > block.timestamp + MAX_LEAD_TIME) {
            revert InvalidSchedule(onSaleAt, startsAt);
        }
        _checkPrice(faceValue);
        eventId = ++eventCount;
        ticketEvents[eventId] = TicketEvent({
            organizer: msg.sender,
            onSaleAt: onSaleAt,
            startsAt: startsAt,
            capacity: capacity,
            sold: 0,
            faceValue: faceValue
        });
        emit EventCreated(eventId, msg.sender, capacity, faceValue, onSaleAt, startsAt);
    }

    /// @notice Primary sale: mint the next ticket of `eventId` to the caller at face value.
    function buyTicket(uint256 eventId) external payable nonReentrant returns (uint256 tokenId) {
        TicketEvent storage ev = ticketEvents[eventId];
        if (ev.organizer == address(0)) revert UnknownEvent(eventId);
        if (block.timestamp < ev.onSaleAt) revert NotOnSale(eventId, ev.onSaleAt, block.timestamp);
        if (block.timestamp >= ev.startsAt) revert EventStarted(eventId, ev.startsAt);
        if (ev.sold >= ev.capacity) revert SoldOut(eventId, ev.capacity);
        if (msg.value != ev.faceValue) revert WrongPayment(ev.faceValue, msg.value);

        ev.sold += 1;
        tokenId = ++ticketCount;
        eventOf[tokenId] = eventId;
        pendingWithdrawals[ev.organizer] += msg.value;
        emit TicketSold(eventId, tokenId, msg.sender, ev.organizer, msg.value);
        // Last: a contract buyer's onERC721Received runs after every state change (and under the guard).
        _safeMint(msg.sender, tokenId);
    }

    /// @notice Offer a ticket you hold for resale at `price` (replaces an earlier listing).
    function listForResale(uint256 tokenId, uint256 price) external {
        if (_ownerOf(tokenId) != msg.sender) revert NotTicketOwner(tokenId, msg.sender);
        if (price == 0) revert ZeroPrice();
        _checkPrice(price);
        uint256 eventId = eventOf[tokenId];
        _requireNotStarted(eventId);
        listings[tokenId] = Listing({seller: msg.sender, price: price});
        emit TicketListed(eventId, tokenId, msg.sender, price);
    }

    function cancelListing(uint256 tokenId) external {
        Listing memory listing = listings[tokenId];
        if (listing.seller == address(0)) revert NotListed(tokenId);
        if (listing.seller != msg.sender) revert NotTicketOwner(tokenId, msg.sender);
        delete listings[tokenId];
        emit ListingCancelled(eventOf[tokenId], tokenId, msg.sender);
    }

    /// @notice Resale: pay the listed price; the ticket moves to the caller, the price to the seller.
    function buyResale(uint256 tokenId) external payable nonReentrant {
        Listing memory listing = listings[tokenId];
        if (listing.seller == address(0)) revert NotListed(tokenId);
        if (msg.value != listing.price) revert WrongPayment(listing.price, msg.value);
        uint256 eventId = eventOf[tokenId];
        _requireNotStarted(eventId);

        delete listings[tokenId];
        pendingWithdrawals[listing.seller] += msg.value;
        emit TicketResold(eventId, tokenId, msg.sender, listing.seller, msg.value);
        _safeTransfer(listing.seller, msg.sender, tokenId);
    }

    /// @notice Withdraw the proceeds credited to the caller.
    function withdraw() external nonReentrant {
        uint256 amount = pendingWithdrawals[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        pendingWithdrawals[msg.sender] = 0;
        emit Withdrawal(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert WithdrawalFailed(msg.sender, amount);
    }

    /// @dev Plain transfers (`transferFrom`, and `safeTransferFrom`, which calls it) are the only ones
    /// that pass here; mints and market resales use the internal paths.
    function transferFrom(address from, address to, uint256 tokenId) public override {
        super.transferFrom(from, to, tokenId);
        emit TicketTransferred(eventOf[tokenId], tokenId, to, from);
    }

    /// @dev Any change of owner voids the old owner's listing, so a stale offer can never be bought.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (listings[tokenId].seller != address(0)) {
            delete listings[tokenId];
            emit ListingCancelled(eventOf[tokenId], tokenId, from);
        }
    }

    function _checkPrice(uint256 price) private pure {
        if (price % PRICE_UNIT != 0) revert PriceNotWholeUnit(price, PRICE_UNIT);
        if (price > MAX_PRICE) revert PriceTooHigh(price, MAX_PRICE);
    }

    function _requireNotStarted(uint256 eventId) private view {
        uint64 startsAt = ticketEvents[eventId].startsAt;
        if (block.timestamp >= startsAt) revert EventStarted(eventId, startsAt);
    }
}
