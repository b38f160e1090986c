"""The demo population: idempotent, the demo people always there, the unknown number never, and GetPerson
answering from a seeded register."""

from __future__ import annotations

import io

import grpc
import pytest

from govhub.common.v1 import common_pb2
from govhub.residence.v1 import residence_pb2 as pb
from govhub.residence.v1 import residence_pb2_grpc
from services.common.clock import Clock
from services.common.idnumber import Sex, check_id_number
from services.common.settings import ServiceSettings
from services.residence import seed as seed_module
from services.residence.seed import DEMO_HOUSEHOLDS, DEMO_PEOPLE, UNREGISTERED_ID_NUMBER, Progress
from services.residence.server import build_server
from tests.service.residence.conftest import TODAY, seed_demo, settle


async def test_seeding_twice_adds_nothing_and_growing_adds_only_the_rest(db_url: str) -> None:
    first = await seed_demo(db_url, households=20)
    assert first.inserted_households == first.households == 20 + len(DEMO_HOUSEHOLDS)
    assert first.inserted_people == first.people > 40
    again = await seed_demo(db_url, households=20)
    assert (again.inserted_households, again.inserted_people) == (0, 0)
    assert (again.households, again.people) == (first.households, first.people)
    grown = await seed_demo(db_url, households=30)
    assert grown.inserted_households == 10 and grown.households == first.households + 10


async def test_get_person_on_a_seeded_register(db_url: str) -> None:
    await seed_demo(db_url, households=50)
    settings = ServiceSettings(service="residence", host="127.0.0.1", port=0, database_url=db_url)
    service = await build_server(settings, clock=Clock(TODAY))
    await service.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    stub = residence_pb2_grpc.ResidenceServiceStub(channel)
    try:
        for demo in DEMO_PEOPLE:
            reply = await stub.GetPerson(pb.GetPersonRequest(id_number=demo.id_number))
            person, household = reply.person, reply.household
            check = check_id_number(demo.id_number)
            assert (person.name, person.status, person.relationship_code) == (
                demo.name,
                pb.PERSON_STATUS_REGISTERED,
                "02",
            )
            assert person.hukou_region_code == demo.id_number[:6] == household.region_code
            assert (person.birth_date.year, person.birth_date.month, person.birth_date.day) == (
                check.birth_date.year,  # type: ignore[union-attr]
                check.birth_date.month,  # type: ignore[union-attr]
                check.birth_date.day,  # type: ignore[union-attr]
            )
            expected_sex = common_pb2.SEX_MALE if check.sex is Sex.MALE else common_pb2.SEX_FEMALE
            assert person.sex == expected_sex
            assert household.head_id_number == demo.id_number and household.type == pb.HOUSEHOLD_TYPE_FAMILY
            assert person.hukou_address and person.police_station
            verified = await stub.VerifyHukou(pb.VerifyHukouRequest(id_number=demo.id_number, name=demo.name))
            assert verified.name_matches and verified.hukou_province_code == demo.id_number[:2]
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stub.GetPerson(pb.GetPersonRequest(id_number=UNREGISTERED_ID_NUMBER))
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        shanghai = await stub.GetHousehold(pb.GetHouseholdRequest(number=DEMO_HOUSEHOLDS[6].number))
        assert shanghai.household.member_count == 5 and shanghai.household.province_code == "31"
    finally:
        await channel.close()
        await service.stop(0)
        await settle()


def test_the_command_reads_the_service_settings_and_reports_on_stdout(tmp_path, capsys) -> None:
    env = {"GOVHUB_VAR_DIR": str(tmp_path)}
    assert seed_module.main(["--households", "5"], env) == 0
    out, err = capsys.readouterr()
    assert (tmp_path / "residence.db").exists()
    assert out.startswith(f"residence seed: {5 + len(DEMO_HOUSEHOLDS)} households") and "[" not in out
    assert "100.0%" in err and "5/5 households" in err
    assert seed_module.main(["--households", "5"], env) == 0
    assert "0 households and 0 people added" in capsys.readouterr().out


def test_the_progress_bar_redraws_in_place_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    bar = Progress(4, stream, width=4)
    bar.update(2, 6)
    bar.update(4, 12)
    bar.close()
    assert stream.getvalue().startswith("\r[##..]  50.0% 2/4 households, 6 people")
    assert "\r[####] 100.0% 4/4 households, 12 people" in stream.getvalue()
