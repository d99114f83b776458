"""Builds the synthetic example bundles in this folder (NN-name.json) and their expected outcomes
(NN-name.expected.yaml). Run from the repository root:  python fhir_examples/build_examples.py

Every patient is invented. Data follow docs/FHIR_INPUT (shared spec): ICD-10-SE, ICD-O-3 morphology, LOINC,
ATC, UCUM/SI units, SCB county (Patient.address.state) and municipality (Patient.address.district) codes,
the project's own code systems urn:mdtflag:assertion and urn:mdtflag:assay. All dates are relative to the
evaluation date AS_OF (2026-11-01); expectations follow CRITERIA.md, not the engine's output.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Optional

import yaml

AS_OF = dt.date(2026, 11, 1)
HERE = Path(__file__).resolve().parent

ICD10SE = "http://hl7.org/fhir/sid/icd-10-se"
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ATC = "http://www.whocc.no/atc"
HGNC = "http://www.genenames.org"
SO = "http://www.sequenceontology.org"
ASSERT = "urn:mdtflag:assertion"
ASSAY = "urn:mdtflag:assay"
MORPH_EXT = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-histology-morphology-behavior"

HGNC_IDS = {
    "BRAF": "HGNC:1097", "BRCA1": "HGNC:1100", "BRCA2": "HGNC:1101", "ERBB2": "HGNC:3430", "KRAS": "HGNC:6407",
    "MET": "HGNC:7029", "NTRK1": "HGNC:8031", "TPM3": "HGNC:12012", "MLH1": "HGNC:7127", "MSH2": "HGNC:7325",
    "TP53": "HGNC:11998", "PIK3CA": "HGNC:8975", "CHEK2": "HGNC:16627", "APC": "HGNC:583",
}
SO_CODES = {"snv": ("SO:0001483", "SNV"), "indel": ("SO:1000032", "delins"),
            "deletion": ("SO:0000159", "deletion"), "cnv": ("SO:0001019", "copy_number_variation"),
            "fusion": ("SO:0001565", "gene_fusion")}
ORIGIN = {"germline": ("LA6683-2", "Germline"), "somatic": ("LA6684-0", "Somatic")}
SIGNIFICANCE = {"pathogenic": ("LA6668-3", "Pathogenic"), "likely-pathogenic": ("LA26332-9", "Likely pathogenic"),
                "vus": ("LA26333-7", "Uncertain significance")}
LAB = {  # analyte: (LOINC, display, UCUM unit)
    "neutrophils": ("751-8", "Neutrophils [#/volume] in Blood by Automated count", "10*9/L"),
    "haemoglobin": ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/L"),
    "platelets": ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*9/L"),
    "bilirubin": ("14631-6", "Bilirubin.total [Moles/volume] in Serum or Plasma", "umol/L"),
    "alt": ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "ukat/L"),
    "ast": ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "ukat/L"),
    "creatinine": ("14682-9", "Creatinine [Moles/volume] in Serum or Plasma", "umol/L"),
    "egfr": ("98979-8", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] by CKD-EPI 2021",
             "mL/min/{1.73_m2}"),
}
ULN = {"bilirubin": 26, "alt": 0.76, "ast": 0.72, "creatinine": 90}  # Swedish SI reference limits (adult)
ATC_NAMES = {
    "L01BC05": "gemcitabin", "L01XA01": "cisplatin", "L01XA02": "karboplatin", "L01XA03": "oxaliplatin",
    "L01BC02": "fluorouracil", "L01CE02": "irinotekan", "L01FF03": "durvalumab", "L01FF02": "pembrolizumab",
    "L01FF01": "nivolumab", "L01FX04": "ipilimumab", "L01FG01": "bevacizumab", "L01FD01": "trastuzumab",
    "L01EC02": "dabrafenib", "L01EE01": "trametinib", "L01EC03": "enkorafenib", "L01FE01": "cetuximab",
    "L01BA04": "pemetrexed", "L01CD02": "docetaxel", "L01CD01": "paklitaxel", "L02AE02": "leuprorelin",
    "L02BB04": "enzalutamid", "L01XK01": "olaparib", "H02AB02": "dexametason", "L01BC06": "kapecitabin",
    "L01BC59": "trifluridin/tipiracil", "L01AA01": "cyklofosfamid", "L01DB01": "doxorubicin",
    "L01XX19": "irinotekan liposomal",
}


def ago(days: int) -> str:
    return (AS_OF - dt.timedelta(days=days)).isoformat()


def born(years: int, days_before_birthday: int = 40) -> str:
    """A birth date that makes the patient `years` old at AS_OF."""
    b = AS_OF.replace(year=AS_OF.year - years) - dt.timedelta(days=days_before_birthday)
    return b.isoformat()


def cc(system: str, code: str, display: Optional[str] = None) -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return {"coding": [c]}


class Case:
    def __init__(self, num: int, name: str, *, given: str, family: str, gender: str, birth: Optional[str],
                 county: Optional[str] = None, municipality: Optional[str] = None, city: Optional[str] = None,
                 deceased: Optional[str] = None, note: str = ""):
        self.num, self.name, self.note = num, name, note
        self.pid = f"p{num:02d}"
        self.resources: list[dict] = []
        self.n = 0
        p: dict[str, Any] = {"resourceType": "Patient", "id": self.pid,
                             "identifier": [{"system": "urn:mdtflag:example-patient", "value": self.pid}],
                             "name": [{"family": family, "given": [given]}], "gender": gender}
        if birth:
            p["birthDate"] = birth
        if deceased:
            p["deceasedDateTime"] = deceased
        if county or municipality or city:
            addr: dict[str, Any] = {"use": "home", "country": "SE"}
            if city:
                addr["city"] = city
            if municipality:
                addr["district"] = municipality
            if county:
                addr["state"] = county
            p["address"] = [addr]
        self.resources.append(p)
        self.expect: dict[str, Any] = {}

    # -- helpers
    def rid(self, prefix: str) -> str:
        self.n += 1
        return f"{self.pid}-{prefix}{self.n}"

    @property
    def subject(self) -> dict:
        return {"reference": f"Patient/{self.pid}"}

    def add(self, res: dict) -> dict:
        self.resources.append(res)
        return res

    # -- conditions
    def condition(self, icd: str, display: str, *, onset: Optional[str] = None, morphology: Optional[str] = None,
                  clinical: str = "active", verification: str = "confirmed", category: str = "problem-list-item") -> str:
        rid = self.rid("cond")
        res: dict[str, Any] = {
            "resourceType": "Condition", "id": rid,
            "clinicalStatus": cc("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical),
            "verificationStatus": cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", verification),
            "category": [cc("http://terminology.hl7.org/CodeSystem/condition-category", category)],
            "code": cc(ICD10SE, icd, display), "subject": self.subject,
        }
        if morphology:
            res["extension"] = [{"url": MORPH_EXT, "valueCodeableConcept": cc(ICDO3, morphology)}]
        if onset:
            res["onsetDateTime"] = onset
        self.add(res)
        return rid

    def metastasis(self, icd: str, display: str, onset: str) -> str:
        return self.condition(icd, display, onset=onset)

    # -- observations
    def obs(self, code: dict, *, category: str, when: Optional[str] = None, period_start: Optional[str] = None,
            **value: Any) -> dict:
        res: dict[str, Any] = {"resourceType": "Observation", "id": self.rid("obs"), "status": "final",
                               "category": [cc("http://terminology.hl7.org/CodeSystem/observation-category", category)],
                               "code": code, "subject": self.subject}
        if period_start:
            res["effectivePeriod"] = {"start": period_start}
        elif when:
            res["effectiveDateTime"] = when
        res.update(value)
        return self.add(res)

    def ecog(self, value: int, when: Optional[str]) -> None:
        self.obs(cc(LOINC, "89247-1", "ECOG Performance Status score"), category="survey", when=when,
                 valueInteger=value)

    def karnofsky(self, value: int, when: str) -> None:
        self.obs(cc(LOINC, "89243-0", "Karnofsky Performance Status score"), category="survey", when=when,
                 valueInteger=value)

    def lab(self, analyte: str, value: float, when: Optional[str], *, uln: Any = "default",
            unit: Optional[str] = None) -> None:
        code, display, default_unit = LAB[analyte]
        u = unit or default_unit
        q = {"value": value, "unit": u, "system": UCUM, "code": u}
        res: dict[str, Any] = {"valueQuantity": q}
        high = ULN.get(analyte) if uln == "default" else uln
        if high is not None:
            res["referenceRange"] = [{"high": {"value": high, "unit": u, "system": UCUM, "code": u}}]
        self.obs(cc(LOINC, code, display), category="laboratory", when=when, **res)

    def labs_ok(self, when: str, *, skip: tuple[str, ...] = (), **override: Any) -> None:
        values = {"neutrophils": 3.4, "haemoglobin": 124, "platelets": 236, "bilirubin": 11, "alt": 0.45,
                  "ast": 0.52, "creatinine": 74, "egfr": 82}
        values.update(override)
        for analyte, v in values.items():
            if analyte not in skip:
                self.lab(analyte, v, when)

    def assertion(self, code: str, when: Optional[str] = None, *, coded: Optional[str] = None,
                  flag: Optional[bool] = None, period_start: Optional[str] = None) -> None:
        value: dict[str, Any] = {}
        if coded is not None:
            value["valueCodeableConcept"] = cc(ASSERT, coded)
        if flag is not None:
            value["valueBoolean"] = flag
        self.obs(cc(ASSERT, code), category="exam", when=when, period_start=period_start, **value)

    def soc(self, status: str, when: str) -> None:
        self.assertion("standard-treatment-status", when, coded=status)

    def extent(self, value: str, when: str) -> None:
        self.assertion("extent", when, coded=value)

    def m1(self, when: str) -> None:
        self.obs(cc(LOINC, "21907-1", "Distant metastases.clinical [Class] Cancer"), category="exam", when=when,
                 valueCodeableConcept=cc("http://cancerstaging.org", "cM1", "cM1"))

    def pregnancy_hcg(self, positive: bool, when: str) -> None:
        self.obs(cc(LOINC, "21198-7", "Choriogonadotropin.beta subunit [Presence] in Serum or Plasma"),
                 category="laboratory", when=when,
                 valueCodeableConcept=cc(LOINC, "LA6576-8" if positive else "LA6577-6",
                                         "Positive" if positive else "Negative"))

    # -- genomics
    def variant(self, gene: str, *, protein: Optional[str] = None, cdna: Optional[str] = None,
                change: Optional[str] = None, origin: Optional[str] = None, significance: Optional[str] = None,
                vaf: Optional[float] = None, copy_number: Optional[float] = None, cn_change: Optional[str] = None,
                partner: Optional[str] = None, when: str, present: bool = True) -> str:
        comps = [{"code": cc(LOINC, "48018-6", "Gene studied [ID]"),
                  "valueCodeableConcept": cc(HGNC, HGNC_IDS.get(gene, gene), gene)}]
        if partner:
            comps.append({"code": cc(LOINC, "48018-6", "Gene studied [ID]"),
                          "valueCodeableConcept": cc(HGNC, HGNC_IDS.get(partner, partner), partner)})
        if cdna:
            comps.append({"code": cc(LOINC, "48004-6", "DNA change (c.HGVS)"),
                          "valueCodeableConcept": cc("http://varnomen.hgvs.org", cdna)})
        if protein:
            comps.append({"code": cc(LOINC, "48005-3", "Amino acid change (pHGVS)"),
                          "valueCodeableConcept": cc("http://varnomen.hgvs.org", protein)})
        if change:
            so, disp = SO_CODES[change]
            comps.append({"code": cc(LOINC, "48019-4", "DNA change type"), "valueCodeableConcept": cc(SO, so, disp)})
        if copy_number is not None:
            comps.append({"code": cc(LOINC, "82155-3", "Genomic structural variant copy number"),
                          "valueQuantity": {"value": copy_number, "unit": "copies", "system": UCUM, "code": "1"}})
        if cn_change:
            code = {"gain": ("LA14033-7", "Copy number gain"), "loss": ("LA14034-5", "Copy number loss")}[cn_change]
            comps.append({"code": cc(LOINC, "62378-5", "Chromosome copy number change [Type]"),
                          "valueCodeableConcept": cc(LOINC, *code)})
        if origin:
            comps.append({"code": cc(LOINC, "48002-0", "Genomic source class [Type]"),
                          "valueCodeableConcept": cc(LOINC, *ORIGIN[origin])})
        if significance:
            comps.append({"code": cc(LOINC, "53037-8", "Genetic variation clinical significance [Imp]"),
                          "valueCodeableConcept": cc(LOINC, *SIGNIFICANCE[significance])})
        if vaf is not None:
            comps.append({"code": cc(LOINC, "81258-6", "Sample variant allelic frequency [NFr]"),
                          "valueQuantity": {"value": vaf, "unit": "1", "system": UCUM, "code": "1"}})
        res = self.obs(cc(LOINC, "69548-6", "Genetic variant assessment"), category="laboratory", when=when,
                       valueCodeableConcept=cc(LOINC, "LA9633-4" if present else "LA9634-2",
                                               "Present" if present else "Absent"),
                       component=comps)
        return res["id"]

    def tmb(self, value: float, when: str) -> str:
        return self.obs(cc(LOINC, "94076-7", "Mutations/Megabase [# Ratio] in Tumor"), category="laboratory",
                        when=when, valueQuantity={"value": value, "unit": "mut/Mb", "system": UCUM,
                                                  "code": "1/1000000{Base}"})["id"]

    def msi(self, status: str, when: str) -> str:
        code = {"msi-h": ("LA26203-2", "MSI-H"), "mss": ("LA14122-8", "Stable")}[status]
        return self.obs(cc(LOINC, "81695-9", "Microsatellite instability [Interpretation] in Cancer specimen"),
                        category="laboratory", when=when, valueCodeableConcept=cc(LOINC, *code))["id"]

    def ihc_her2(self, score: str, when: str) -> str:
        return self.obs(cc(LOINC, "48676-1", "HER2 [Interpretation] in Tissue"), category="laboratory",
                        when=when, valueCodeableConcept={"text": score})["id"]

    def report(self, assay: str, when: str, results: list[str], *, lab: Optional[str] = None,
               status: str = "final", title: Optional[str] = None) -> None:
        code = {"coding": [{"system": LOINC, "code": "51969-4", "display": "Genetic analysis report"},
                           {"system": ASSAY, "code": assay}]}
        if title:
            code["text"] = title
        res: dict[str, Any] = {"resourceType": "DiagnosticReport", "id": self.rid("dr"), "status": status,
                               "category": [cc("http://terminology.hl7.org/CodeSystem/v2-0074", "GE", "Genetics")],
                               "code": code, "subject": self.subject, "effectiveDateTime": when,
                               "issued": f"{when}T12:00:00+01:00"}
        if results:
            res["result"] = [{"reference": f"Observation/{r}"} for r in results]
        if lab:
            res["performer"] = [{"display": lab}]
        self.add(res)

    # -- treatment, trials, referrals, family
    def med(self, atc: str, start: str, *, end: Optional[str] = None, status: str = "completed") -> None:
        res: dict[str, Any] = {"resourceType": "MedicationStatement", "id": self.rid("med"), "status": status,
                               "medicationCodeableConcept": cc(ATC, atc, ATC_NAMES.get(atc)),
                               "subject": self.subject}
        period = {"start": start}
        if end:
            period["end"] = end
        res["effectivePeriod"] = period
        self.add(res)

    def trial_candidate(self, study_id: str, title: str, phase: str, status: str = "candidate") -> None:
        sid = self.rid("study")
        self.add({"resourceType": "ResearchStudy", "id": sid, "status": "active", "title": title,
                  "identifier": [{"system": "urn:mdtflag:example-study", "value": study_id}],
                  "phase": cc("http://terminology.hl7.org/CodeSystem/research-study-phase", phase)})
        self.add({"resourceType": "ResearchSubject", "id": self.rid("rs"), "status": status,
                  "study": {"reference": f"ResearchStudy/{sid}"}, "individual": self.subject})

    def genetics_referral(self, when: str) -> None:
        self.add({"resourceType": "ServiceRequest", "id": self.rid("sr"), "status": "active", "intent": "order",
                  "code": cc(ASSERT, "cancer-genetics-referral", "Remiss till cancergenetisk mottagning"),
                  "subject": self.subject, "authoredOn": when})

    def relative(self, role: str, display: str, icd: str, icd_display: str, onset_age: Optional[int] = None) -> None:
        cond: dict[str, Any] = {"code": cc(ICD10SE, icd, icd_display)}
        if onset_age is not None:
            cond["onsetAge"] = {"value": onset_age, "unit": "år", "system": UCUM, "code": "a"}
        self.add({"resourceType": "FamilyMemberHistory", "id": self.rid("fmh"), "status": "completed",
                  "patient": self.subject,
                  "relationship": cc("http://terminology.hl7.org/CodeSystem/v3-RoleCode", role, display),
                  "condition": [cond]})

    # -- output
    def bundle(self) -> dict:
        return {"resourceType": "Bundle", "id": f"example-{self.num:02d}", "type": "collection",
                "timestamp": f"{AS_OF.isoformat()}T08:00:00+01:00",
                "entry": [{"fullUrl": f"http://example.org/fhir/{r['resourceType']}/{r['id']}", "resource": r}
                          for r in self.resources]}

    @property
    def stem(self) -> str:
        return f"{self.num:02d}-{self.name}"


CASES: list[Case] = []


def case(*args: Any, **kwargs: Any) -> Case:
    c = Case(*args, **kwargs)
    CASES.append(c)
    return c


# =============================================================================================== cases
def cholangio_base(c: Case, *, liver_mets: bool = False, ecog: Optional[tuple[int, str]] = (1, ago(12)),
                   labs_when: Optional[str] = ago(5), soc: Optional[str] = "exhausted", **labs: Any) -> None:
    c.condition("C22.1", "Intrahepatisk gallgångscancer", onset=ago(620), morphology="8160/3")
    c.metastasis("C78.0", "Sekundär malign tumör i lunga", ago(190))
    if liver_mets:
        c.metastasis("C78.7", "Sekundär malign tumör i levern", ago(190))
    c.med("L01BC05", ago(600), end=ago(420))
    c.med("L01XA01", ago(600), end=ago(420))
    c.med("L01FF03", ago(600), end=ago(420))
    c.med("L01BC02", ago(360), end=ago(80))
    c.med("L01XA03", ago(360), end=ago(80))
    if soc:
        c.soc(soc, ago(17))
    c.assertion("measurable-disease", ago(20), flag=True)
    c.assertion("biopsy-feasible", ago(17), flag=True)
    if ecog:
        c.ecog(*ecog)
    if labs_when:
        c.labs_ok(labs_when, **labs)


def gms560(c: Case, when: str, results: list[str], lab: str = "Klinisk genetik och genomik, Sahlgrenska universitetssjukhuset") -> None:
    c.report("GMS560", when, results, lab=lab, title="GMS560 solid tumörpanel")


# 01 --------------------------------------------------------------------------------------------
c = case(1, "cholangio-braf-v600e-focuse-eligible", given="Karin", family="Lindqvist", gender="female",
         birth=born(58), county="14", municipality="1480", city="Göteborg")
cholangio_base(c)
v = c.variant("BRAF", protein="NP_004324.2:p.Val600Glu", cdna="NM_004333.6:c.1799T>A", change="snv",
              origin="somatic", significance="pathogenic", vaf=0.32, when=ago(47))
m = c.msi("mss", ago(47)); t = c.tmb(4.1, ago(47))
gms560(c, ago(47), [v, m, t])
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "vastra"}},
    "rules": {"TRIAL-FOCUSE": "flagged", "MDK-NAT-1": "flagged", "MDK-NAT-2": "flagged", "MDK-REG-1": "flagged",
              "MDK-LOC-1": "not_flagged", "MDK-PED-1": "not_applicable", "F-ACT": "flagged", "F-ONLABEL-ANY": "not_flagged",
              "HER-1": "not_flagged", "HER-2": "not_flagged", "PED-WGS-1": "not_flagged", "DQ-1": "not_flagged",
              "DQ-2": "not_flagged", "DQ-3": "not_flagged", "DQ-4": "not_flagged", "DQ-6": "not_flagged",
              "DQ-9": "not_flagged", "DQ-7": "not_applicable"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-C1": "met", "TRIAL-C2": "met", "TRIAL-C3": "met", "TRIAL-I4": "met",
                                  "TRIAL-I6e": "met", "TRIAL-I8": "met", "TRIAL-E1": "met"},
                 "MDK-REG-1": {"MDK-REG-1a": "met"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-BRAF-DT": "flagged", "K-BRAF-VC": "flagged", "K-HER2-TP": "not_flagged",
                                 "K-MTOR-E": "not_applicable"}},
}

# 02 --------------------------------------------------------------------------------------------
c = case(2, "melanoma-braf-v600e-on-label", given="Bengt", family="Holmberg", gender="male", birth=born(66),
         county="12", municipality="1280", city="Malmö")
c.condition("C43.5", "Malignt melanom på bålen", onset=ago(900), morphology="8720/3")
c.metastasis("C78.0", "Sekundär malign tumör i lunga", ago(240))
c.med("L01FF01", ago(230), end=ago(100))
c.med("L01FX04", ago(230), end=ago(160))
c.soc("not-exhausted", ago(14))
c.assertion("measurable-disease", ago(20), flag=True)
c.ecog(0, ago(14)); c.labs_ok(ago(6))
v = c.variant("BRAF", protein="p.(Val600Glu)", cdna="c.1799T>A", change="snv", origin="somatic",
              significance="pathogenic", vaf=0.41, when=ago(60))
gms560(c, ago(60), [v], lab="Klinisk genetik och patologi, Skånes universitetssjukhus Lund")
c.expect = {
    "decisions": {"mdk": {"level": "regional", "target_region": "sodra"}},
    "rules": {"TRIAL-FOCUSE": "not_flagged", "F-ONLABEL-ANY": "flagged", "MDK-NAT-1": "not_flagged",
              "MDK-NAT-2": "not_flagged", "MDK-REG-1": "flagged", "F-ACT": "flagged"},
    "cohorts": {"TRIAL-FOCUSE": {
        "K-BRAF-DT": {"status": "not_flagged", "failed": ["TRIAL-C2", "TRIAL-C3", "TRIAL-I3"], "not_failed": ["TRIAL-C1"]},
        "K-BRAF-VC": {"status": "not_flagged", "failed": ["TRIAL-C2", "TRIAL-C3"]}}},
}

# 03 --------------------------------------------------------------------------------------------
c = case(3, "colon-ntrk1-fusion-tumour-agnostic-label", given="Eva", family="Sandberg", gender="female",
         birth=born(61), county="01", municipality="0180", city="Stockholm")
c.condition("C18.7", "Malign tumör i colon sigmoideum", onset=ago(800), morphology="8140/3")
c.metastasis("C78.7", "Sekundär malign tumör i levern", ago(400))
for atc in ("L01BC02", "L01XA03", "L01FG01"):
    c.med(atc, ago(780), end=ago(500))
c.med("L01CE02", ago(480), end=ago(150))
c.soc("exhausted", ago(10))
c.assertion("measurable-disease", ago(20), flag=True)
c.ecog(1, ago(10)); c.labs_ok(ago(4), ast=0.9, alt=0.8)
v = c.variant("TPM3", partner="NTRK1", change="fusion", origin="somatic", significance="pathogenic", when=ago(40))
m = c.msi("mss", ago(40))
c.report("TSO500", ago(40), [v, m], lab="Klinisk patologi, Karolinska Universitetssjukhuset")
c.expect = {
    "decisions": {"mdk": {"level": "regional", "target_region": "stockholm-gotland"}},
    "rules": {"TRIAL-FOCUSE": "not_flagged", "F-ONLABEL-ANY": "flagged", "MDK-NAT-1": "not_flagged",
              "MDK-NAT-2": "not_flagged", "MDK-REG-1": "flagged"},
    "cohorts": {"TRIAL-FOCUSE": {"K-NTRK-E": {"status": "not_flagged", "failed": ["TRIAL-C2", "TRIAL-C3"],
                                              "not_failed": ["TRIAL-C1", "TRIAL-I3", "TRIAL-I4", "TRIAL-I6e"]}}},
}

# 04 --------------------------------------------------------------------------------------------
c = case(4, "rectal-erbb2-amp-prior-trastuzumab", given="Lars", family="Nyström", gender="male", birth=born(55),
         county="05", municipality="0580", city="Linköping")
c.condition("C20", "Malign tumör i rektum", onset=ago(1000), morphology="8140/3")
c.metastasis("C78.0", "Sekundär malign tumör i lunga", ago(500))
for atc in ("L01BC02", "L01XA03", "L01FG01"):
    c.med(atc, ago(950), end=ago(700))
c.med("L01CE02", ago(690), end=ago(420))
c.med("L01FD01", ago(300), end=ago(120))
c.soc("exhausted", ago(9))
c.assertion("measurable-disease", ago(20), flag=True)
c.ecog(1, ago(9)); c.labs_ok(ago(3))
v = c.variant("ERBB2", change="cnv", copy_number=14, cn_change="gain", origin="somatic", when=ago(330))
gms560(c, ago(330), [v], lab="Klinisk genetik, Linköpings universitetssjukhus")
c.expect = {
    "decisions": {"mdk": {"level": "regional", "target_region": "sydostra"}},
    "rules": {"TRIAL-FOCUSE": "not_flagged", "MDK-NAT-1": "not_flagged", "MDK-NAT-2": "not_flagged",
              "MDK-REG-1": "flagged", "F-ONLABEL-ANY": "not_flagged"},
    "cohorts": {"TRIAL-FOCUSE": {"K-HER2-TP": {"status": "not_flagged", "failed": ["TRIAL-E1"],
                                               "not_failed": ["TRIAL-C1", "TRIAL-C2", "TRIAL-C3"]}}},
}

# 05 --------------------------------------------------------------------------------------------
c = case(5, "gallbladder-erbb2-liver-mets-ast-below-liver-limit", given="Margareta", family="Berg",
         gender="female", birth=born(70), county="03", municipality="0380", city="Uppsala")
c.condition("C23", "Malign tumör i gallblåsan", onset=ago(500), morphology="8140/3")
c.metastasis("C78.7", "Sekundär malign tumör i levern", ago(300))
for atc in ("L01BC05", "L01XA01", "L01FF03"):
    c.med(atc, ago(480), end=ago(300))
c.med("L01BC02", ago(280), end=ago(60)); c.med("L01XA03", ago(280), end=ago(60))
c.soc("exhausted", ago(11))
c.assertion("measurable-disease", ago(20), flag=True)
c.ecog(1, ago(11))
c.labs_ok(ago(4), ast=2.45, alt=2.36, bilirubin=36)   # AST 3.4 × ULN, ALT 3.1 × ULN, bilirubin 1.4 × ULN
v = c.variant("ERBB2", change="cnv", copy_number=9, cn_change="gain", origin="somatic", when=ago(70))
gms560(c, ago(70), [v], lab="Klinisk genetik och genomik, Akademiska sjukhuset")
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "mellansverige"}},
    "rules": {"TRIAL-FOCUSE": "flagged", "MDK-NAT-1": "flagged", "MDK-NAT-2": "flagged"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-I6e": "met", "TRIAL-I6e-AST": "met", "TRIAL-I6e-ALT": "met",
                                  "TRIAL-I6d": "met"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-HER2-TP": "flagged"}},
}

# 06 --------------------------------------------------------------------------------------------
c = case(6, "pancreas-kras-g12c-ast-above-limit-no-liver-mets", given="Per", family="Åkesson", gender="male",
         birth=born(63), county="06", municipality="0680", city="Jönköping")
c.condition("C25.0", "Malign tumör i pankreashuvudet", onset=ago(420), morphology="8500/3")
c.metastasis("C78.0", "Sekundär malign tumör i lunga", ago(200))
for atc in ("L01BC02", "L01XA03", "L01CE02"):
    c.med(atc, ago(400), end=ago(220))
c.med("L01BC05", ago(210), end=ago(40))
c.soc("exhausted", ago(8))
c.assertion("measurable-disease", ago(20), flag=True)
c.ecog(1, ago(8))
c.labs_ok(ago(3), ast=2.16, alt=2.05)   # AST 3.0 × ULN, ALT 2.7 × ULN; no liver metastases → limit 2.5
v = c.variant("KRAS", protein="p.Gly12Cys", cdna="c.34G>T", change="snv", origin="somatic",
              significance="pathogenic", vaf=0.28, when=ago(90))
gms560(c, ago(90), [v], lab="Klinisk genetik, Linköpings universitetssjukhus")
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "sydostra"}},
    "rules": {"TRIAL-FOCUSE": "not_flagged", "MDK-NAT-1": "flagged", "MDK-NAT-2": "not_flagged"},
    "cohorts": {"TRIAL-FOCUSE": {"K-KRAS-S": {"status": "not_flagged",
                                              "failed": ["TRIAL-I6e", "TRIAL-I6e-AST", "TRIAL-I6e-ALT"],
                                              "not_failed": ["TRIAL-C1", "TRIAL-C2", "TRIAL-C3", "TRIAL-I6d"]}}},
}


def nsclc_met_base(c: Case, onset_brain: str) -> None:
    c.condition("C34.1", "Malign tumör i lungans övre lob", onset=ago(700), morphology="8140/3")
    c.metastasis("C79.3", "Sekundär malign tumör i hjärnan och hjärnhinnorna", onset_brain)
    for atc in ("L01XA02", "L01BA04", "L01FF02"):
        c.med(atc, ago(680), end=ago(400))
    c.med("L01CD02", ago(380), end=ago(150))
    c.soc("exhausted", ago(12))
    c.assertion("measurable-disease", ago(20), flag=True)
    v = c.variant("MET", change="cnv", copy_number=14, cn_change="gain", origin="somatic", when=ago(100))
    gms560(c, ago(100), [v], lab="Klinisk genetik, Universitetssjukhuset Örebro")


# 07 --------------------------------------------------------------------------------------------
c = case(7, "nsclc-met-amp-brain-mets-stable-treated", given="Anders", family="Lundgren", gender="male",
         birth=born(59), county="18", municipality="1880", city="Örebro")
nsclc_met_base(c, ago(210))
c.med("H02AB02", ago(200), end=ago(104))
c.assertion("brain-metastases-status", coded="stable-treated", period_start=ago(123))
c.karnofsky(80, ago(15))      # ECOG derived from Karnofsky (80 → ECOG 1)
c.labs_ok(ago(5))
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "mellansverige"}},
    "rules": {"TRIAL-FOCUSE": "flagged", "MDK-NAT-1": "flagged", "MDK-NAT-2": "flagged"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-E4": "met", "TRIAL-I4": "met", "TRIAL-C2": "met", "TRIAL-C3": "met"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-MET-C": "flagged"}},
}

# 08 --------------------------------------------------------------------------------------------
c = case(8, "nsclc-met-amp-brain-mets-progressive", given="Ingrid", family="Ek", gender="female", birth=born(64),
         county="20", municipality="2080", city="Falun")
nsclc_met_base(c, ago(150))
c.assertion("brain-metastases-status", ago(14), coded="progressive")
c.ecog(1, ago(14)); c.labs_ok(ago(5))
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "mellansverige"}},
    "rules": {"TRIAL-FOCUSE": "not_flagged", "MDK-NAT-1": "flagged", "MDK-NAT-2": "not_flagged"},
    "cohorts": {"TRIAL-FOCUSE": {"K-MET-C": {"status": "not_flagged", "failed": ["TRIAL-E4"],
                                             "not_failed": ["TRIAL-C1", "TRIAL-C2", "TRIAL-C3"]}}},
}

# 09 --------------------------------------------------------------------------------------------
c = case(9, "nsclc-met-amp-brain-mets-stable-on-steroids", given="Göran", family="Wallin", gender="male",
         birth=born(68), county="19", municipality="1980", city="Västerås")
nsclc_met_base(c, ago(160))
c.assertion("brain-metastases-status", coded="stable-treated", period_start=ago(78))
c.med("H02AB02", ago(22), status="active")
c.ecog(1, ago(10)); c.labs_ok(ago(5))
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "mellansverige"}},
    "rules": {"TRIAL-FOCUSE": "not_flagged", "MDK-NAT-1": "flagged"},
    "cohorts": {"TRIAL-FOCUSE": {"K-MET-C": {"status": "not_flagged", "failed": ["TRIAL-E4"]}}},
}

# 10 --------------------------------------------------------------------------------------------
c = case(10, "prostate-localised-halland-halmstad", given="Sven", family="Johansson", gender="male",
         birth=born(71), county="13", municipality="1380", city="Halmstad")
c.condition("C61.9", "Malign tumör i prostata", onset=ago(73), morphology="8140/3")
c.extent("localised", ago(60))
c.expect = {
    "decisions": {"mdk": {"level": "local", "target_region": "sodra"}},
    "rules": {"MDK-LOC-1": "flagged", "MDK-REG-1": "not_flagged", "MDK-NAT-1": "not_flagged",
              "MDK-NAT-2": "not_flagged", "TRIAL-FOCUSE": "not_flagged", "DQ-3": "not_applicable",
              "DQ-5": "not_flagged", "DQ-6": "not_flagged", "DQ-1": "not_applicable", "HER-3": "not_flagged"},
}

# 11 --------------------------------------------------------------------------------------------
c = case(11, "prostate-mcrpc-germline-brca2-halland-kungsbacka", given="Olof", family="Persson", gender="male",
         birth=born(68), county="13", municipality="1384", city="Kungsbacka")
c.condition("C61.9", "Malign tumör i prostata", onset=ago(1400), morphology="8140/3")
c.metastasis("C79.5", "Sekundär malign tumör i skelett och benmärg", ago(500))
c.med("L02AE02", ago(1300), status="active")
c.med("L01CD02", ago(480), end=ago(360))
c.med("L02BB04", ago(340), status="active")
c.soc("not-exhausted", ago(20))
c.ecog(1, ago(20))
g = c.variant("BRCA2", protein="p.Ser1982ArgfsTer22", cdna="NM_000059.4:c.5946del", change="indel",
              origin="germline", significance="pathogenic", when=ago(45))
c.report("targeted-panel", ago(45), [g], lab="Klinisk genetik, Sahlgrenska universitetssjukhuset",
         title="Ärftlig cancer, konstitutionell genpanel")
v = c.variant("BRCA2", protein="p.Ser1982ArgfsTer22", cdna="NM_000059.4:c.5946del", change="indel",
              significance="pathogenic", vaf=0.71, when=ago(60))
gms560(c, ago(60), [v])
c.expect = {
    "decisions": {"mdk": {"level": "regional", "target_region": "vastra"}},
    "rules": {"HER-1": "flagged", "HER-2": "not_flagged", "MDK-REG-1": "flagged", "TRIAL-FOCUSE": "not_flagged",
              "MDK-NAT-1": "not_flagged", "F-ONLABEL-ANY": "flagged", "DQ-8": "not_flagged"},
    # HER-2 is judged per gene (one row per ESMO gene); the BRCA2 row is suppressed by the germline BRCA2
    # result (rules/tests/her-2.yaml checks the per-gene suppression row by row)
    "criteria": {"MDK-REG-1": {"MDK-REG-1a": "met", "MDK-REG-1c": "met"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-PARP-O": {"status": "not_flagged", "failed": ["TRIAL-C2", "TRIAL-I3", "TRIAL-E6"]}}},
    "targets": {"HER-1": "vastra"},
    "suggested": {"HER-1": ["BRCA2"]},
}

# 12 --------------------------------------------------------------------------------------------
c = case(12, "breast-localised-halland-without-municipality", given="Maria", family="Andersson", gender="female",
         birth=born(52), county="13", city="Halland")
c.condition("C50.4", "Malign tumör i bröstets övre yttre kvadrant", onset=ago(40), morphology="8500/3")
c.extent("localised", ago(30))
c.expect = {
    "decisions": {"mdk": {"level": "local", "target_region": None}},
    "rules": {"DQ-6": "flagged", "MDK-LOC-1": "flagged"},
}

# 13 --------------------------------------------------------------------------------------------
c = case(13, "colon-germline-mlh1-no-address", given="Johan", family="Karlsson", gender="male", birth=born(44))
c.condition("C18.2", "Malign tumör i colon ascendens", onset=ago(95), morphology="8140/3")
c.extent("localised", ago(80))
m = c.msi("msi-h", ago(70))
c.report("targeted-panel", ago(70), [m], lab="Klinisk patologi")
g = c.variant("MLH1", protein="p.Thr117Met", cdna="NM_000249.4:c.350C>T", change="snv", origin="germline",
              significance="pathogenic", when=ago(30))
c.report("targeted-panel", ago(30), [g], lab="Klinisk genetik", title="Lynch syndrom, konstitutionell genpanel")
c.expect = {
    "decisions": {"mdk": {"level": "local", "target_region": None}},
    "rules": {"DQ-6": "flagged", "HER-1": "flagged", "HER-2": "not_flagged", "MDK-LOC-1": "flagged",
              "MDK-REG-1": "not_flagged"},
    "targets": {"HER-1": None},
    "suggested": {"HER-1": ["MLH1"]},
}

# 14 --------------------------------------------------------------------------------------------
c = case(14, "deceased-cholangio-braf", given="Rune", family="Gustafsson", gender="male", birth=born(69),
         county="14", municipality="1490", city="Borås", deceased=f"{ago(48)}T04:10:00+01:00")
cholangio_base(c, labs_when=ago(60), ecog=(2, ago(62)))
v = c.variant("BRAF", protein="p.V600E", change="snv", origin="somatic", significance="pathogenic", vaf=0.35,
              when=ago(120))
gms560(c, ago(120), [v])
c.expect = {
    "decisions": {"mdk": {"level": "undetermined"}},
    "rules": {"TRIAL-FOCUSE": "not_applicable", "MDK-NAT-1": "not_applicable", "MDK-NAT-2": "not_applicable",
              "MDK-REG-1": "not_applicable", "MDK-LOC-1": "not_applicable", "MDK-PED-1": "not_applicable",
              "HER-1": "not_applicable", "HER-2": "not_applicable", "HER-3": "not_applicable",
              "PED-WGS-1": "not_applicable", "DQ-1": "not_applicable", "DQ-3": "not_applicable",
              "DQ-6": "not_applicable", "F-ACT": "not_applicable", "F-ONLABEL-ANY": "not_applicable"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-ALIVE": "not_met"}, "MDK-LOC-1": {"MDK-LOC-1-ALIVE": "not_met"}},
}

# 15 --------------------------------------------------------------------------------------------
c = case(15, "child-neuroblastoma-no-wgs", given="Alva", family="Nilsson", gender="female", birth=born(4, 170),
         county="08", municipality="0880", city="Kalmar")
c.condition("C74.9", "Malign tumör i binjure, ospecificerad", onset=ago(27), morphology="9500/3")
c.expect = {
    "decisions": {"mdk": {"level": "paediatric", "target_region": "sydostra"}},
    "rules": {"MDK-PED-1": "flagged", "PED-WGS-1": "flagged", "TRIAL-FOCUSE": "not_applicable",
              "MDK-LOC-1": "not_applicable", "MDK-NAT-1": "not_applicable", "DQ-5": "not_applicable"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-I1": "not_met"}, "PED-WGS-1": {"PED-WGS-1-CHILD": "met",
                                                                        "PED-WGS-1-NO-WGS": "met"}},
    "targets": {"PED-WGS-1": "sydostra"},
}

# 16 --------------------------------------------------------------------------------------------
c = case(16, "child-medulloblastoma-wgs-done", given="Elias", family="Lindström", gender="male", birth=born(9),
         county="24", municipality="2480", city="Umeå")
c.condition("C71.6", "Malign tumör i lillhjärnan", onset=ago(165), morphology="9470/3")
c.report("WGS", ago(142), [], lab="GMS Barncancer, Klinisk genetik, Norrlands universitetssjukhus",
         title="Helgenomsekvensering tumör/normal")
c.expect = {
    "decisions": {"mdk": {"level": "paediatric", "target_region": "norra"}},
    "rules": {"MDK-PED-1": "flagged", "PED-WGS-1": "not_flagged", "TRIAL-FOCUSE": "not_applicable"},
    "criteria": {"PED-WGS-1": {"PED-WGS-1-CHILD": "met", "PED-WGS-1-NO-WGS": "not_met"}},
}

# 17 --------------------------------------------------------------------------------------------
c = case(17, "young-adult-osteosarcoma-diagnosed-at-16-no-wgs", given="Wilma", family="Håkansson",
         gender="female", birth=born(19, 10), county="17", municipality="1780", city="Karlstad")
c.condition("C40.2", "Malign tumör i långa ben i nedre extremitet", onset=ago(1150), morphology="9180/3")
c.extent("localised", ago(100))
c.med("L01XA01", ago(1130), end=ago(900)); c.med("L01DB01", ago(1130), end=ago(900))
c.expect = {
    "decisions": {"mdk": {"level": "local", "target_region": "mellansverige"}},
    "rules": {"PED-WGS-1": "flagged", "MDK-PED-1": "not_applicable", "MDK-LOC-1": "flagged"},
    "criteria": {"PED-WGS-1": {"PED-WGS-1-CHILD": "met"}},
}

# 18 --------------------------------------------------------------------------------------------
c = case(18, "young-adult-sarcoma-without-diagnosis-date", given="Oskar", family="Hansson", gender="male",
         birth=born(20, 120), county="09", municipality="0980", city="Visby")
c.condition("C49.2", "Malign tumör i bindväv och mjukvävnad i nedre extremitet", morphology="8900/3")
c.extent("localised", ago(40))
c.expect = {
    "decisions": {"mdk": {"level": "local", "target_region": "stockholm-gotland"}},
    "rules": {"PED-WGS-1": "indeterminate", "MDK-LOC-1": "flagged"},
    "criteria": {"PED-WGS-1": {"PED-WGS-1-CHILD": "unknown", "PED-WGS-1-NO-WGS": "met"}},
}

# 19 --------------------------------------------------------------------------------------------
c = case(19, "breast-germline-brca1-already-referred", given="Sara", family="Engström", gender="female",
         birth=born(39), county="01", municipality="0184", city="Solna")
c.condition("C50.9", "Malign tumör i bröstet, ospecificerad", onset=ago(120), morphology="8500/3")
c.extent("localised", ago(110))
g = c.variant("BRCA1", protein="p.Gln1756ProfsTer74", cdna="NM_007294.4:c.5266dup", change="indel",
              origin="germline", significance="pathogenic", when=ago(75))
c.report("targeted-panel", ago(75), [g], lab="Klinisk genetik, Karolinska Universitetssjukhuset",
         title="Ärftlig bröst- och äggstockscancer, konstitutionell genpanel")
c.genetics_referral(ago(61))
c.relative("MTH", "mother", "C50.9", "Malign tumör i bröstet", 44)
c.expect = {
    "decisions": {"mdk": {"level": "local", "target_region": "stockholm-gotland"}},
    "rules": {"HER-1": "not_flagged", "HER-2": "not_flagged", "HER-3": "not_flagged", "MDK-LOC-1": "flagged"},
    "criteria": {"HER-1": {"HER-1-VAR": "met", "HER-1-NO-REFERRAL": "not_met"},
                 "HER-3": {"HER-3-NO-REFERRAL": "not_met"}},
}

# 20 --------------------------------------------------------------------------------------------
c = case(20, "ovarian-tumour-only-brca2-possible-germline", given="Birgitta", family="Sjöberg", gender="female",
         birth=born(57), county="21", municipality="2180", city="Gävle")
c.condition("C56.9", "Malign tumör i äggstock", onset=ago(260), morphology="8461/3")
c.metastasis("C78.6", "Sekundär malign tumör i retroperitoneum och peritoneum", ago(260))
c.med("L01XA02", ago(240), end=ago(110)); c.med("L01CD01", ago(240), end=ago(110))
c.soc("not-exhausted", ago(25))
c.ecog(0, ago(25))
v = c.variant("BRCA2", protein="p.Leu2092ProfsTer7", cdna="NM_000059.4:c.6275_6276del", change="indel",
              significance="likely-pathogenic", vaf=0.46, when=ago(150))
t53 = c.variant("TP53", protein="p.Arg273His", cdna="NM_000546.6:c.818G>A", change="snv", origin="somatic",
                significance="pathogenic", vaf=0.62, when=ago(150))
gms560(c, ago(150), [v, t53], lab="Klinisk genetik och genomik, Akademiska sjukhuset")
c.expect = {
    "decisions": {"mdk": {"level": "regional", "target_region": "mellansverige"}},
    "rules": {"HER-2": "flagged", "HER-1": "indeterminate", "DQ-8": "flagged", "MDK-REG-1": "flagged",
              "TRIAL-FOCUSE": "not_flagged", "MDK-NAT-1": "not_flagged"},
    "criteria": {"HER-1": {"HER-1-VAR": "unknown"}, "HER-2": {"HER-2-VAR": "met"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-PARP-O": {"status": "not_flagged", "failed": ["TRIAL-C2"]}}},
    "targets": {"HER-2": "mellansverige"},
}

# 21 --------------------------------------------------------------------------------------------
c = case(21, "breast-somatic-brca2-matched-normal", given="Kerstin", family="Forsberg", gender="female",
         birth=born(62), county="23", municipality="2380", city="Östersund")
c.condition("C50.9", "Malign tumör i bröstet, ospecificerad", onset=ago(1500), morphology="8500/3")
c.metastasis("C79.5", "Sekundär malign tumör i skelett och benmärg", ago(300))
c.soc("not-exhausted", ago(30))
v = c.variant("BRCA2", protein="p.Glu1953Ter", cdna="NM_000059.4:c.5857G>T", change="snv", origin="somatic",
              significance="pathogenic", vaf=0.12, when=ago(200))
p = c.variant("PIK3CA", protein="p.His1047Arg", cdna="NM_006218.4:c.3140A>G", change="snv", origin="somatic",
              significance="pathogenic", vaf=0.33, when=ago(200))
gms560(c, ago(200), [v, p], lab="Klinisk genetik, Norrlands universitetssjukhus")
c.expect = {
    "decisions": {"mdk": {"level": "regional", "target_region": "norra"}},
    "rules": {"HER-1": "not_flagged", "HER-2": "not_flagged", "DQ-8": "not_flagged", "MDK-REG-1": "flagged"},
    # HER-2 per gene: the BRCA2 row fails HER-2-NOT-SOMATIC (somatic origin confirmed against a matched normal)
    "criteria": {"HER-1": {"HER-1-VAR": "not_met"}},
}

# 22 --------------------------------------------------------------------------------------------
c = case(22, "prostate-tumour-only-msh2-without-vaf", given="Karl", family="Strand", gender="male",
         birth=born(74), county="22", municipality="2281", city="Sundsvall")
c.condition("C61.9", "Malign tumör i prostata", onset=ago(900), morphology="8140/3")
c.metastasis("C79.5", "Sekundär malign tumör i skelett och benmärg", ago(200))
c.med("L02AE02", ago(880), status="active")
v = c.variant("MSH2", protein="p.Arg406Ter", cdna="NM_000251.3:c.1216C>T", change="snv",
              significance="pathogenic", when=ago(50))
gms560(c, ago(50), [v], lab="Klinisk genetik, Norrlands universitetssjukhus")
c.expect = {
    "decisions": {"mdk": {"level": "local", "target_region": "norra"}},
    "rules": {"HER-1": "indeterminate", "HER-2": "indeterminate", "DQ-8": "flagged", "DQ-4": "flagged",
              "MDK-REG-1": "not_flagged", "MDK-NAT-1": "not_flagged", "F-ACT": "not_flagged",
              "TRIAL-FOCUSE": "not_flagged"},
    "criteria": {"HER-2": {"HER-2-VAR": "unknown"}, "TRIAL-FOCUSE": {"TRIAL-C1": "not_met"}},
}

# 23 --------------------------------------------------------------------------------------------
c = case(23, "cup-c80-erbb2-amp-unspecific-tumour-type", given="Gunilla", family="Blom", gender="female",
         birth=born(67), county="12", municipality="1281", city="Lund")
c.condition("C80.9", "Malign tumör utan specificerad lokal", onset=ago(330), morphology="8140/3")
c.metastasis("C78.7", "Sekundär malign tumör i levern", ago(330))
c.med("L01XA02", ago(320), end=ago(200)); c.med("L01CD01", ago(320), end=ago(200))
c.soc("exhausted", ago(13))
c.assertion("measurable-disease", ago(20), flag=True)
c.ecog(1, ago(13)); c.labs_ok(ago(6))
v = c.variant("ERBB2", change="cnv", copy_number=10, cn_change="gain", origin="somatic", when=ago(150))
gms560(c, ago(150), [v], lab="Klinisk genetik och patologi, Skånes universitetssjukhus Lund")
c.expect = {
    "decisions": {"mdk": {"level": "regional", "target_region": "sodra", "pending": ["MDK-NAT-1", "MDK-NAT-2"]}},
    "rules": {"DQ-9": "flagged", "TRIAL-FOCUSE": "indeterminate", "MDK-NAT-1": "indeterminate",
              "MDK-NAT-2": "indeterminate", "F-ONLABEL-ANY": "indeterminate", "MDK-REG-1": "flagged"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-C1": "met", "TRIAL-C2": "unknown", "TRIAL-C3": "unknown"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-HER2-TP": "indeterminate"}},
}


def crc_base(c: Case, icd: str, display: str, *, soc: Optional[str] = "exhausted") -> None:
    c.condition(icd, display, onset=ago(900), morphology="8140/3")
    c.metastasis("C78.7", "Sekundär malign tumör i levern", ago(450))
    for atc in ("L01BC02", "L01XA03", "L01FG01"):
        c.med(atc, ago(880), end=ago(620))
    c.med("L01CE02", ago(600), end=ago(300))
    c.med("L01BC59", ago(290), end=ago(100))
    if soc:
        c.soc(soc, ago(15))
    c.assertion("measurable-disease", ago(20), flag=True)


# 24 --------------------------------------------------------------------------------------------
c = case(24, "colon-kras-g12c-ecog-missing", given="Mikael", family="Larsson", gender="male", birth=born(60),
         county="04", municipality="0484", city="Eskilstuna")
crc_base(c, "C18.4", "Malign tumör i colon transversum")
c.labs_ok(ago(5))
v = c.variant("KRAS", protein="p.G12C", change="snv", origin="somatic", significance="pathogenic", vaf=0.31,
              when=ago(80))
gms560(c, ago(80), [v], lab="Klinisk genetik och genomik, Akademiska sjukhuset")
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "mellansverige"}},
    "rules": {"TRIAL-FOCUSE": "indeterminate", "DQ-1": "flagged", "DQ-1b": "not_flagged", "MDK-NAT-2": "flagged",
              "MDK-NAT-1": "flagged"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-I4": "unknown", "TRIAL-C1": "met"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-KRAS-S": "indeterminate"}},
}

# 25 --------------------------------------------------------------------------------------------
c = case(25, "pancreas-braf-v600e-ecog-stale-no-pregnancy-test", given="Linnea", family="Axelsson",
         gender="female", birth=born(48), county="07", municipality="0780", city="Växjö")
c.condition("C25.1", "Malign tumör i pankreaskroppen", onset=ago(520), morphology="8500/3")
c.metastasis("C78.7", "Sekundär malign tumör i levern", ago(300))
for atc in ("L01BC02", "L01XA03", "L01CE02"):
    c.med(atc, ago(500), end=ago(330))
c.med("L01BC05", ago(320), end=ago(60))
c.soc("exhausted", ago(12))
c.assertion("measurable-disease", ago(20), flag=True)
c.ecog(1, ago(73))
c.labs_ok(ago(6))
v = c.variant("BRAF", protein="p.V600E", change="snv", origin="somatic", significance="pathogenic", vaf=0.22,
              when=ago(100))
gms560(c, ago(100), [v], lab="Klinisk genetik och patologi, Skånes universitetssjukhus Lund")
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "sodra"}},
    "rules": {"TRIAL-FOCUSE": "indeterminate", "DQ-1": "not_flagged", "DQ-1b": "flagged", "DQ-7": "flagged",
              "MDK-NAT-2": "flagged", "MDK-NAT-1": "flagged"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-I4": "unknown", "TRIAL-E3": "met"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-BRAF-DT": "indeterminate", "K-BRAF-VC": "indeterminate"}},
}

# 26 --------------------------------------------------------------------------------------------
c = case(26, "bile-duct-her2-ihc3-bilirubin-without-uln", given="Stig", family="Mattsson", gender="male",
         birth=born(65), county="10", municipality="1080", city="Karlskrona")
c.condition("C24.0", "Malign tumör i extrahepatiska gallgångar", onset=ago(450), morphology="8160/3")
c.metastasis("C78.0", "Sekundär malign tumör i lunga", ago(200))
for atc in ("L01BC05", "L01XA01", "L01FF03"):
    c.med(atc, ago(430), end=ago(250))
c.med("L01BC02", ago(240), end=ago(50)); c.med("L01XA03", ago(240), end=ago(50))
c.soc("exhausted", ago(9))
c.assertion("measurable-disease", ago(20), flag=True)
c.ecog(1, ago(9))
c.labs_ok(ago(4), skip=("bilirubin", "alt", "ast"))
c.lab("bilirubin", 18, ago(4), uln=None)
c.lab("alt", 38, ago(4), uln=45, unit="U/L")
c.lab("ast", 41, ago(4), uln=45, unit="U/L")
h = c.ihc_her2("3+", ago(120))
c.report("ihc", ago(120), [h], lab="Klinisk patologi, Blekingesjukhuset")
c.report("broad-panel", ago(110), [], lab="Klinisk genetik och patologi, Skånes universitetssjukhus Lund",
         title="Bred cancerpanel (523 gener), inga behandlingsbara fynd utöver HER2")
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "sodra"}},
    "rules": {"TRIAL-FOCUSE": "indeterminate", "DQ-2": "flagged", "DQ-2b": "not_flagged", "MDK-NAT-2": "flagged"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-I6d": "unknown", "TRIAL-I6e": "met", "TRIAL-C1": "met"},
                 "DQ-2": {"DQ-2-BILI-ULN": "met", "DQ-2-BILI": "not_met"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-HER2-TP": "indeterminate"}},
}

# 27 --------------------------------------------------------------------------------------------
c = case(27, "colon-braf-v600e-after-encorafenib-cetuximab", given="Annika", family="Björk", gender="female",
         birth=born(57), county="14", municipality="1490", city="Borås")
crc_base(c, "C18.0", "Malign tumör i caecum")
c.med("L01EC03", ago(250), end=ago(60)); c.med("L01FE01", ago(250), end=ago(60))
c.ecog(1, ago(15)); c.labs_ok(ago(5))
v = c.variant("BRAF", protein="p.V600E", change="snv", origin="somatic", significance="pathogenic", vaf=0.27,
              when=ago(700))
m = c.msi("mss", ago(700))
gms560(c, ago(700), [v, m])
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "vastra"}},
    # MDK-NAT-1: no off-label BRAF-inhibitor proposal after encorafenib (same target class L01EC, F-PRIOR-CLASS);
    # national through the trial cohorts (TRIAL-E1 excludes the exact drug only).
    "rules": {"TRIAL-FOCUSE": "flagged", "F-ONLABEL-ANY": "not_flagged", "MDK-NAT-1": "not_flagged",
              "MDK-NAT-2": "flagged"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-C2": "met", "TRIAL-C3": "met", "TRIAL-E1": "met"},
                 "MDK-NAT-1": {"MDK-NAT-1-OFFLABEL": "met", "MDK-NAT-1-UNTRIED": "not_met"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-BRAF-DT": "flagged", "K-BRAF-VC": "flagged"}},
}

# 28 --------------------------------------------------------------------------------------------
c = case(28, "colon-msi-high-pembrolizumab-on-label-untried", given="Leif", family="Dahl", gender="male",
         birth=born(72), county="01", municipality="0126", city="Huddinge")
crc_base(c, "C18.0", "Malign tumör i caecum")
c.ecog(1, ago(15)); c.labs_ok(ago(5))
m = c.msi("msi-h", ago(600)); t = c.tmb(38.0, ago(600))
gms560(c, ago(600), [m, t], lab="Klinisk genetik, Karolinska Universitetssjukhuset")
c.expect = {
    "decisions": {"mdk": {"level": "regional", "target_region": "stockholm-gotland"}},
    "rules": {"TRIAL-FOCUSE": "not_flagged", "F-ONLABEL-ANY": "flagged", "MDK-NAT-1": "not_flagged",
              "MDK-REG-1": "flagged"},
    "cohorts": {"TRIAL-FOCUSE": {"K-IO-ATZ": {"status": "not_flagged", "failed": ["TRIAL-C3"],
                                              "not_failed": ["TRIAL-C1", "TRIAL-C2"]}}},
}

# 29 --------------------------------------------------------------------------------------------
c = case(29, "nsclc-phase3-trial-candidate", given="Åke", family="Lindberg", gender="male", birth=born(66),
         county="25", municipality="2580", city="Luleå")
c.condition("C34.3", "Malign tumör i lungans nedre lob", onset=ago(60), morphology="8070/3")
c.metastasis("C79.5", "Sekundär malign tumör i skelett och benmärg", ago(60))
c.m1(ago(58))
c.soc("not-exhausted", ago(10))
c.ecog(1, ago(10))
c.report("targeted-panel", ago(40), [], lab="Klinisk patologi, Sunderby sjukhus", title="EGFR/ALK/ROS1, inga fynd")
c.trial_candidate("SE-FAS3-2026-014", "Randomiserad fas 3-studie, första linjens behandling vid skivepitelcancer i lunga",
                  "phase-3")
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "norra"}},
    "rules": {"MDK-NAT-2": "flagged", "MDK-NAT-1": "not_flagged", "DQ-3": "flagged", "MDK-REG-1": "not_flagged",
              "TRIAL-FOCUSE": "not_flagged"},
    "criteria": {"MDK-NAT-2": {"MDK-NAT-2a": "met"}, "MDK-REG-1": {"MDK-REG-1b": "not_met"}},
}

# 30 --------------------------------------------------------------------------------------------
c = case(30, "ovarian-no-broad-profile-standard-exhausted", given="Helena", family="Lund", gender="female",
         birth=born(61), county="05", municipality="0581", city="Norrköping")
c.condition("C56.9", "Malign tumör i äggstock", onset=ago(1100), morphology="8461/3")
c.metastasis("C78.6", "Sekundär malign tumör i retroperitoneum och peritoneum", ago(1100))
c.med("L01XA02", ago(1080), end=ago(900)); c.med("L01CD01", ago(1080), end=ago(900))
c.med("L01FG01", ago(880), end=ago(500)); c.med("L01DB01", ago(480), end=ago(200))
c.soc("exhausted", ago(16))
c.assertion("measurable-disease", ago(20), flag=True)
c.ecog(1, ago(16)); c.labs_ok(ago(6))
c.expect = {
    "decisions": {"mdk": {"level": "regional", "target_region": "sydostra", "pending": []}},
    "rules": {"MDK-REG-1": "flagged", "DQ-3": "flagged", "TRIAL-FOCUSE": "indeterminate",
              "MDK-NAT-2": "not_flagged", "MDK-NAT-1": "not_flagged"},
    "criteria": {"MDK-REG-1": {"MDK-REG-1b": "met"}, "TRIAL-FOCUSE": {"TRIAL-C1": "unknown"}},
}

# 31 --------------------------------------------------------------------------------------------
c = case(31, "breast-family-history-breast-and-ovarian", given="Emma", family="Olsson", gender="female",
         birth=born(45), county="14", municipality="1488", city="Trollhättan")
c.condition("C50.4", "Malign tumör i bröstets övre yttre kvadrant", onset=ago(50), morphology="8500/3")
c.extent("localised", ago(40))
c.relative("MTH", "mother", "C56.9", "Malign tumör i äggstock", 52)
c.relative("MAUNT", "maternal aunt", "C50.9", "Malign tumör i bröstet", 61)
c.expect = {
    "decisions": {"mdk": {"level": "local", "target_region": "vastra"}},
    "rules": {"HER-3": "flagged", "HER-1": "not_flagged", "MDK-LOC-1": "flagged"},
    "criteria": {"HER-3": {"HER-3-BREAST-OVARY": "met", "HER-3-YOUNG": "not_met"}},
    "targets": {"HER-3": "vastra"},
}

# 32 --------------------------------------------------------------------------------------------
c = case(32, "colon-family-history-onset-age-missing", given="Nils", family="Ström", gender="male",
         birth=born(50), county="12", municipality="1283", city="Helsingborg")
c.condition("C18.7", "Malign tumör i colon sigmoideum", onset=ago(70), morphology="8140/3")
c.extent("localised", ago(60))
c.relative("FTH", "father", "C18.9", "Malign tumör i tjocktarmen, ospecificerad")
c.expect = {
    "decisions": {"mdk": {"level": "local", "target_region": "sodra"}},
    "rules": {"HER-3": "indeterminate"},
    "criteria": {"HER-3": {"HER-3-YOUNG": "unknown", "HER-3-COLORECTAL-ENDOMETRIAL": "not_met"}},
}

# 33 --------------------------------------------------------------------------------------------
c = case(33, "prostate-family-history-late-onset", given="Bo", family="Ekström", gender="male", birth=born(70),
         county="18", municipality="1883", city="Karlskoga")
c.condition("C61.9", "Malign tumör i prostata", onset=ago(90), morphology="8140/3")
c.extent("localised", ago(80))
c.relative("BRO", "brother", "C61.9", "Malign tumör i prostata", 68)
c.expect = {
    "decisions": {"mdk": {"level": "local", "target_region": "mellansverige"}},
    "rules": {"HER-3": "not_flagged"},
    "criteria": {"HER-3": {"HER-3-YOUNG": "not_met"}},
}

# 34 --------------------------------------------------------------------------------------------
c = case(34, "cholangio-braf-labs-stale-halland-varberg", given="Tomas", family="Jonsson", gender="male",
         birth=born(60), county="13", municipality="1383", city="Varberg")
cholangio_base(c, labs_when=ago(42))
v = c.variant("BRAF", protein="p.V600E", change="snv", origin="somatic", significance="pathogenic", vaf=0.3,
              when=ago(90))
gms560(c, ago(90), [v])
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "vastra"}},
    "rules": {"TRIAL-FOCUSE": "indeterminate", "DQ-2b": "flagged", "DQ-2": "not_flagged", "MDK-NAT-2": "flagged"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-I6a": "unknown", "TRIAL-I6d": "unknown", "TRIAL-I6f": "unknown"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-BRAF-DT": "indeterminate"}},
}

# 35 --------------------------------------------------------------------------------------------
c = case(35, "melanoma-extent-unknown", given="Gustav", family="Söderberg", gender="male", birth=born(77),
         county="24", municipality="2482", city="Skellefteå")
c.condition("C43.6", "Malignt melanom på övre extremitet", onset=ago(35), morphology="8720/3")
c.expect = {
    "decisions": {"mdk": {"level": "local", "target_region": "norra", "pending": ["MDK-REG-1"]}},
    "rules": {"DQ-5": "flagged", "MDK-REG-1": "indeterminate", "MDK-LOC-1": "flagged", "DQ-3": "indeterminate",
              "DQ-4": "indeterminate", "MDK-NAT-1": "not_flagged", "MDK-NAT-2": "not_flagged"},
    "criteria": {"MDK-REG-1": {"MDK-REG-1b": "unknown"}},
}

# 36 --------------------------------------------------------------------------------------------
c = case(36, "pancreas-kras-g12c-treatment-status-unknown-platelets-missing", given="Agneta", family="Wikström",
         gender="female", birth=born(66), county="01", municipality="0181", city="Södertälje")
c.condition("C25.9", "Malign tumör i pankreas, ospecificerad", onset=ago(400), morphology="8500/3")
c.metastasis("C78.7", "Sekundär malign tumör i levern", ago(380))
for atc in ("L01BC02", "L01XA03", "L01CE02"):
    c.med(atc, ago(380), end=ago(200))
c.assertion("measurable-disease", ago(20), flag=True)
c.ecog(1, ago(7)); c.labs_ok(ago(4), skip=("platelets",))
v = c.variant("KRAS", protein="p.G12C", change="snv", origin="somatic", significance="pathogenic", vaf=0.35,
              when=ago(150))
gms560(c, ago(150), [v], lab="Klinisk genetik, Karolinska Universitetssjukhuset")
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "stockholm-gotland"}},
    "rules": {"DQ-4": "flagged", "DQ-2": "flagged", "MDK-NAT-1": "indeterminate", "TRIAL-FOCUSE": "indeterminate",
              "MDK-NAT-2": "flagged"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-I3": "unknown", "TRIAL-I6c": "unknown"}, "DQ-2": {"DQ-2-PLT": "met"},
                 "MDK-NAT-1": {"MDK-NAT-1-SOC": "unknown"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-KRAS-S": "indeterminate"}},
}

# 37 --------------------------------------------------------------------------------------------
c = case(37, "cholangio-braf-positive-hcg", given="Johanna", family="Berglund", gender="female", birth=born(34),
         county="03", municipality="0380", city="Uppsala")
cholangio_base(c)
c.pregnancy_hcg(True, ago(6))
v = c.variant("BRAF", protein="p.V600E", change="snv", origin="somatic", significance="pathogenic", vaf=0.3,
              when=ago(60))
gms560(c, ago(60), [v], lab="Klinisk genetik och genomik, Akademiska sjukhuset")
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "mellansverige"}},
    "rules": {"TRIAL-FOCUSE": "not_flagged", "MDK-NAT-1": "flagged", "DQ-7": "not_applicable"},
    "cohorts": {"TRIAL-FOCUSE": {"K-BRAF-DT": {"status": "not_flagged", "failed": ["TRIAL-E3"]}}},
}

# 38 --------------------------------------------------------------------------------------------
c = case(38, "breast-cancer-in-remission-germline-chek2", given="Ulla", family="Hedlund", gender="female",
         birth=born(61), county="06", municipality="0683", city="Värnamo")
c.condition("C50.9", "Malign tumör i bröstet, ospecificerad", onset=ago(2400), morphology="8500/3",
            clinical="remission")
g = c.variant("CHEK2", protein="p.Thr367MetfsTer15", cdna="NM_007194.4:c.1100del", change="indel",
              origin="germline", significance="pathogenic", when=ago(20))
c.report("targeted-panel", ago(20), [g], lab="Klinisk genetik, Linköpings universitetssjukhus",
         title="Ärftlig bröstcancer, konstitutionell genpanel")
c.expect = {
    "decisions": {"mdk": {"level": "undetermined"}},
    "rules": {"MDK-LOC-1": "not_flagged", "HER-1": "flagged", "DQ-5": "not_applicable", "DQ-3": "not_applicable",
              "MDK-REG-1": "not_flagged", "MDK-NAT-1": "not_flagged", "TRIAL-FOCUSE": "not_flagged"},
    "criteria": {"MDK-REG-1": {"MDK-REG-1-CANCER": "not_met"}},
    "targets": {"HER-1": "sydostra"},
}

# 39 --------------------------------------------------------------------------------------------
c = case(39, "child-leukaemia-in-remission", given="Hugo", family="Berggren", gender="male", birth=born(12),
         county="12", municipality="1280", city="Malmö")
c.condition("C91.0", "Akut lymfatisk leukemi", onset=ago(1500), morphology="9811/3", clinical="remission")
c.expect = {
    "decisions": {"mdk": {"level": "undetermined"}},
    # no active cancer, so no MDT level; but WGS is offered to every child diagnosed with cancer, also in
    # remission (action plan S11), through the paediatric oncology centre of the region
    "rules": {"MDK-PED-1": "not_flagged", "PED-WGS-1": "flagged"},
    "criteria": {"PED-WGS-1": {"PED-WGS-1-CHILD": "met", "PED-WGS-1-NO-WGS": "met"}},
    "targets": {"PED-WGS-1": "sodra"},
}

# 40 --------------------------------------------------------------------------------------------
c = case(40, "kidney-cancer-birth-date-missing", given="Anna", family="Eriksson", gender="female", birth=None,
         county="14", municipality="1480", city="Göteborg")
c.condition("C64.9", "Malign tumör i njure", onset=ago(50), morphology="8312/3")
c.expect = {
    "decisions": {"mdk": {"level": "undetermined", "pending": ["MDK-PED-1", "MDK-REG-1", "MDK-LOC-1"]}},
    "rules": {"MDK-LOC-1": "indeterminate", "MDK-PED-1": "indeterminate", "MDK-REG-1": "indeterminate",
              "DQ-5": "indeterminate", "PED-WGS-1": "indeterminate"},
    "criteria": {"DQ-5": {"DQ-5-NO-EXTENT": "met"}},
}

# 41 --------------------------------------------------------------------------------------------
c = case(41, "cholangio-braf-undated-ecog-and-bilirubin-negative-hcg", given="Sofia", family="Wallgren",
         gender="female", birth=born(45), county="22", municipality="2281", city="Sundsvall")
cholangio_base(c, ecog=(1, None), skip=("bilirubin",))
c.lab("bilirubin", 12, None)
c.pregnancy_hcg(False, ago(3))
v = c.variant("BRAF", protein="p.V600E", change="snv", origin="somatic", significance="pathogenic", vaf=0.3,
              when=ago(70))
gms560(c, ago(70), [v], lab="Klinisk genetik, Norrlands universitetssjukhus")
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "norra"}},
    "rules": {"TRIAL-FOCUSE": "indeterminate", "DQ-1": "not_flagged", "DQ-1b": "indeterminate",
              "DQ-2": "not_flagged", "DQ-2b": "indeterminate", "DQ-7": "not_flagged", "MDK-NAT-2": "flagged"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-I4": "unknown", "TRIAL-I6d": "unknown", "TRIAL-E3": "met"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-BRAF-DT": {"status": "indeterminate", "unknown": ["TRIAL-I4", "TRIAL-I6d"]}}},
}

# 42 --------------------------------------------------------------------------------------------
# Relapsed multiple myeloma with BRAF V600E, standard treatment exhausted: the MEGALiT-proxy profile admits
# myeloma to the cohorts (allow_haematological); advanced disease = the disease-status assessment (relapsed),
# never a stage (DQ-5 not flagged).
c = case(42, "myeloma-relapsed-braf-v600e-trial-candidate", given="Göran", family="Nyström", gender="male",
         birth=born(64), county="03", municipality="0380", city="Uppsala")
c.condition("C90.0", "Multipelt myelom", onset=ago(2070), morphology="9732/3", clinical="relapse")
c.med("L04AX04", ago(2040), end=ago(1250))
c.med("L01XG01", ago(1220), end=ago(660))
c.med("L01FC01", ago(640), end=ago(73))
c.assertion("disease-status", ago(20), coded="relapsed")
c.soc("exhausted", ago(17))
c.assertion("measurable-disease", ago(20), flag=True)
c.assertion("biopsy-feasible", ago(17), flag=True)
c.ecog(1, ago(12))
c.labs_ok(ago(5), haemoglobin=104, platelets=132)
v = c.variant("BRAF", protein="p.(Val600Glu)", cdna="c.1799T>A", change="snv", origin="somatic",
              significance="pathogenic", vaf=0.18, when=ago(32))
c.report("broad-panel", ago(32), [v], lab="Klinisk genetik, Akademiska sjukhuset", title="Hematologisk bred panel")
c.expect = {
    "decisions": {"mdk": {"level": "national", "target_region": "mellansverige"}},
    "rules": {"TRIAL-FOCUSE": "flagged", "MDK-NAT-1": "flagged", "MDK-NAT-2": "flagged", "DQ-5": "not_flagged",
              "MDK-LOC-1": "not_flagged"},
    "criteria": {"TRIAL-FOCUSE": {"TRIAL-C1-TUMOUR": "met", "TRIAL-I2-ADV": "met", "TRIAL-C2": "met"},
                 "DQ-5": {"DQ-5-NO-DISEASE-STATUS": "not_met", "DQ-5-NO-EXTENT": "not_met"}},
    "cohorts": {"TRIAL-FOCUSE": {"K-BRAF-DT": "flagged", "K-BRAF-VC": "flagged"}},
}


# =============================================================================================== write
def main() -> None:
    for old in HERE.glob("[0-9][0-9]-*.json"):
        old.unlink()
    for old in HERE.glob("[0-9][0-9]-*.expected.yaml"):
        old.unlink()
    for c in CASES:
        bundle = c.bundle()
        (HERE / f"{c.stem}.json").write_text(json.dumps(bundle, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        exp: dict[str, Any] = {"bundle": f"{c.stem}.json", "as_of": AS_OF,
                               "profile": "FOCUSE_PROXY_MEGALIT", "expect": c.expect}
        text = yaml.safe_dump(exp, allow_unicode=True, sort_keys=False, default_flow_style=None, width=120)
        (HERE / f"{c.stem}.expected.yaml").write_text(text, encoding="utf-8")
    print(f"wrote {len(CASES)} bundles")


if __name__ == "__main__":
    main()
