"""Which fields each QuickBooks entity has, and which of them a request may write.

``KNOWN`` lists the top-level properties per entity from Intuit's Finance.xsd / IntuitNamesTypes.xsd
(plus the ``domain``/``sparse``/``status`` attributes). The real API deserializes strictly and
rejects an unrecognized property with fault 2010, so the emulator does too. ``WRITABLE`` are the
fields a full update replaces (and sets to NULL when omitted); everything else in a request body is
read-only and silently ignored, as on the real service.
"""

from __future__ import annotations

_BASE = {"Id", "SyncToken", "MetaData", "domain", "sparse", "status", "CustomField",
         "AttachableRef"}
_TXN = _BASE | {"DocNumber", "TxnDate", "DepartmentRef", "CurrencyRef", "ExchangeRate",
                "PrivateNote", "TxnStatus", "LinkedTxn", "Line", "TxnTaxDetail",
                "TxnSource", "TaxFormType", "TaxFormNum", "TransactionLocationType", "Tag",
                "TxnApprovalInfo", "RecurDataRef", "TotalCostAmount", "HomeTotalCostAmount",
                "ProjectRef", "RecurringInfo"}
_SALES = _TXN | {"AutoDocNumber", "CustomerRef", "CustomerMemo", "BillAddr", "ShipAddr",
                 "FreeFormAddress", "ShipFromAddr", "RemitToRef", "ClassRef", "SalesTermRef",
                 "DueDate", "SalesRepRef", "PONumber", "FOB", "ShipMethodRef", "ShipDate",
                 "TrackingNum", "GlobalTaxCalculation", "TotalAmt", "HomeTotalAmt",
                 "ApplyTaxAfterDiscount", "ShippingTaxIncludedInTotalTax", "TemplateRef",
                 "PrintStatus", "EmailStatus", "BillEmail", "BillEmailCc", "BillEmailBcc",
                 "ARAccountRef", "Balance", "HomeBalance", "FinanceCharge", "PaymentMethodRef",
                 "PaymentRefNum", "PaymentType", "CheckPayment", "CreditCardPayment",
                 "DepositToAccountRef", "DeliveryInfo", "DiscountRate", "DiscountAmt",
                 "GovtTxnRefIdentifier", "TaxExemptionRef"}

KNOWN: dict[str, frozenset[str]] = {
    "Invoice": frozenset(_SALES | {
        "Deposit", "AllowIPNPayment", "AllowOnlinePayment", "AllowOnlineCreditCardPayment",
        "AllowOnlineACHPayment", "AllowOnlinePayPalPayment", "EInvoiceStatus",
        "ECloudStatusTimeStamp", "CfdiUse", "Exportation", "GlobalInfo", "invoiceStatus",
        "callToAction", "invoiceStatusLog", "InvoiceEx", "LessCIS", "InvoiceLink",
        "PaymentDetailsMessage", "ConvenienceFeeDetail", "InvoiceLinkSecurityCode",
        "InvoiceLinkExpiryDate", "AutoPayEligible", "SchedulePayEligible", "ScheduledPaymentId",
        "GratuityEnabled", "FinancingProductType", "SubscriptionPaymentsSetting"}),
    "CreditMemo": frozenset(_SALES | {"RemainingCredit", "InvoiceRef", "CreditMemoEx"}),
    "Payment": frozenset(_TXN | {
        "CustomerRef", "RemitToRef", "ARAccountRef", "DepositToAccountRef", "PaymentMethodRef",
        "PaymentRefNum", "PaymentType", "CheckPayment", "CreditCardPayment", "TotalAmt",
        "UnappliedAmt", "ProcessPayment", "PaymentEx"}),
    "Customer": frozenset(_BASE | {
        "IntuitId", "Organization", "Title", "GivenName", "MiddleName", "FamilyName", "Suffix",
        "FullyQualifiedName", "CompanyName", "DisplayName", "PrintOnCheckName", "UserId",
        "Active", "V4IDPseudonym", "PrimaryPhone", "AlternatePhone", "Mobile", "Fax",
        "PrimaryEmailAddr", "WebAddr", "OtherContactInfo", "DefaultTaxCodeRef", "Taxable",
        "TaxExemptionReasonId", "BillAddr", "ShipAddr", "OtherAddr", "ContactName",
        "AltContactName", "Notes", "Job", "BillWithParent", "RootCustomerRef", "ParentRef",
        "Level", "CustomerTypeRef", "SalesTermRef", "SalesRepRef", "PaymentMethodRef",
        "CCDetail", "PriceLevelRef", "Balance", "OpenBalanceDate", "BalanceWithJobs",
        "CreditLimit", "AcctNum", "CurrencyRef", "OverDueBalance", "TotalRevenue",
        "TotalExpense", "PreferredDeliveryMethod", "ResaleNum", "JobInfo", "TDSEnabled",
        "CustomerEx", "SecondaryTaxIdentifier", "ARAccountRef", "PrimaryTaxIdentifier",
        "TaxGroupCodeRef", "TaxRateRef", "BusinessNumber", "GSTIN", "GSTRegistrationType",
        "IsCISContractor", "ClientCompanyId", "ClientEntityId", "IsProject", "Source",
        "TaxRegime"}),
    "Attachable": frozenset(_BASE | {
        "FileName", "FileAccessUri", "TempDownloadUri", "Size", "ContentType", "Category",
        "Lat", "Long", "PlaceName", "Note", "Tag", "ThumbnailFileAccessUri",
        "ThumbnailTempDownloadUri", "AttachableEx"}),
}

WRITABLE: dict[str, frozenset[str]] = {
    "Invoice": frozenset({
        "Line", "CustomerRef", "CurrencyRef", "ExchangeRate", "DocNumber", "TxnDate", "DueDate",
        "PrivateNote", "CustomerMemo", "BillEmail", "BillEmailCc", "BillEmailBcc", "BillAddr",
        "ShipAddr", "ShipFromAddr", "ShipDate", "ShipMethodRef", "TrackingNum", "SalesTermRef",
        "ClassRef", "DepartmentRef", "CustomField", "ApplyTaxAfterDiscount", "PrintStatus",
        "EmailStatus", "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment", "TxnTaxDetail",
        "ProjectRef", "Deposit", "DepositToAccountRef", "GlobalTaxCalculation",
        "TransactionLocationType", "SalesRepRef", "PONumber"}),
    "CreditMemo": frozenset({
        "Line", "CustomerRef", "CurrencyRef", "ExchangeRate", "DocNumber", "TxnDate",
        "PrivateNote", "CustomerMemo", "BillEmail", "BillAddr", "ShipAddr", "ClassRef",
        "DepartmentRef", "CustomField", "ApplyTaxAfterDiscount", "PrintStatus", "EmailStatus",
        "TxnTaxDetail", "ProjectRef", "GlobalTaxCalculation", "SalesTermRef"}),
    "Payment": frozenset({
        "CustomerRef", "CurrencyRef", "ExchangeRate", "TotalAmt", "Line", "TxnDate",
        "PrivateNote", "PaymentRefNum", "DepositToAccountRef", "PaymentMethodRef",
        "ARAccountRef", "ProjectRef", "DepartmentRef", "CustomField"}),
    "Customer": frozenset({
        "Title", "GivenName", "MiddleName", "FamilyName", "Suffix", "CompanyName",
        "DisplayName", "PrintOnCheckName", "Active", "PrimaryPhone", "AlternatePhone", "Mobile",
        "Fax", "PrimaryEmailAddr", "WebAddr", "BillAddr", "ShipAddr", "Notes", "Taxable",
        "SalesTermRef", "PaymentMethodRef", "PreferredDeliveryMethod", "ResaleNum",
        "CustomerTypeRef", "CurrencyRef", "ParentRef", "Job", "BillWithParent",
        "DefaultTaxCodeRef", "PrimaryTaxIdentifier", "CustomField"}),
    "Attachable": frozenset({"FileName", "Note", "Category", "Lat", "Long", "PlaceName", "Tag",
                             "AttachableRef", "ContentType"}),
}

#: Free-text limits enforced with fault 2050 (from the entity reference pages).
MAX_LENGTH: dict[str, dict[str, int]] = {
    "Invoice": {"PrivateNote": 4000, "DocNumber": 21, "TrackingNum": 31},
    "CreditMemo": {"PrivateNote": 4000, "DocNumber": 21},
    "Payment": {"PrivateNote": 4000, "PaymentRefNum": 21},
    "Customer": {"DisplayName": 500, "CompanyName": 100, "GivenName": 100, "FamilyName": 100,
                 "Notes": 2000},
    # Attachable.Note's limit is not documented; 4000 is the common QBO memo limit.
    "Attachable": {"Note": 4000, "FileName": 1000},
}

#: The path segment each entity is written to and read from (``/v3/company/{realm}/<path>``).
RESOURCES = {"invoice": "Invoice", "payment": "Payment", "creditmemo": "CreditMemo",
             "customer": "Customer", "attachable": "Attachable", "companyinfo": "CompanyInfo",
             "preferences": "Preferences"}


def unknown_fields(entity: str, body: dict[str, object]) -> list[str]:
    """Top-level properties the real deserializer would not recognize."""
    known = KNOWN.get(entity)
    if known is None:
        return []
    return [k for k in body if k not in known]
