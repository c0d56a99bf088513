import numpy as np
import pytest

from gazetune.gaze import validate_samples
from gazetune.gaze.importers import read_eyelink_asc, read_gaze_csv, read_pupil_csv, read_samples, read_tobii_tsv

ASC_HEADER = """** CONVERTED FROM D:\\rec\\s01.edf using edfapi 4.2.1 Win32  Apr 13 2021
** DATE: Wed Mar  8 09:25:20 2023
** TYPE: EDF_FILE BINARY EVENT SAMPLE TAGGED
** VERSION: EYELINK II 1
** SOURCE: EYELINK CL
**

MSG\t2091650 DISPLAY_COORDS 0 0 1919 1079
"""

ASC_MONO = ASC_HEADER + """START\t2154555 \tRIGHT\tSAMPLES\tEVENTS
PRESCALER\t1
PUPIL\tAREA
EVENTS\tGAZE\tRIGHT\tRATE\t1000.00\tTRACKING\tCR\tFILTER\t2
SAMPLES\tGAZE\tRIGHT\tRATE\t1000.00\tTRACKING\tCR\tFILTER\t2
2154556\t  660.0\t  340.0\t  778.0\t...
2154557\t  661.0\t  341.0\t  779.0\t...
2154558\t   .\t   .\t    0.0\t...
2154559\t  962.5\t  541.0\t  780.0\t...
END\t2154560 \tSAMPLES\tEVENTS\tRES\t  38.54\t  31.12
"""

ASC_BINO = ASC_HEADER + """START\t100 \tLEFT\tRIGHT\tSAMPLES\tEVENTS
PUPIL\tAREA
EVENTS\tGAZE\tLEFT\tRIGHT\tRATE\t500.00\tTRACKING\tCR\tFILTER\t2
SAMPLES\tGAZE\tLEFT\tRIGHT\tRATE\t500.00\tTRACKING\tCR\tFILTER\t2
100\t  100.0\t  200.0\t  700.0\t  110.0\t  210.0\t  720.0\t.....
102\t  100.0\t  200.0\t  700.0\t   .\t   .\t    0.0\t.....
END\t104 \tSAMPLES\tEVENTS\tRES\t  38.54\t  31.12
"""


def test_eyelink_asc_monocular_with_rect(tmp_path):
    p = tmp_path / "s01.asc"
    p.write_text(ASC_MONO)
    s = read_eyelink_asc(p, image_rect=(560, 240, 800, 600), image_size=(800, 600))
    np.testing.assert_array_equal(s.t_ms, [2154556, 2154557, 2154558, 2154559])
    np.testing.assert_allclose(s.x, [100.0, 101.0, np.nan, 402.5])
    np.testing.assert_allclose(s.y, [100.0, 101.0, np.nan, 301.0])
    np.testing.assert_allclose(s.screen_x[:2], [660.0, 661.0])
    np.testing.assert_allclose(s.pupil, [778, 779, np.nan, 780])
    assert s.source == "tracker" and s.meta["sampling_rate_hz"] == 1000.0
    _, rep = validate_samples(s, min_duration_ms=1, min_valid_samples=2)
    assert rep.n_lost == 1


def test_eyelink_asc_binocular_eyes(tmp_path):
    p = tmp_path / "b.asc"
    p.write_text(ASC_BINO)
    avg = read_eyelink_asc(p)
    np.testing.assert_allclose(avg.x, [105.0, 100.0])  # mean of both; left only where right lost
    np.testing.assert_allclose(avg.y, [205.0, 200.0])
    right = read_eyelink_asc(p, eye="right")
    np.testing.assert_allclose(right.x, [110.0, np.nan])
    with pytest.raises(ValueError, match="eye must be"):
        read_eyelink_asc(p, eye="both")


def test_eyelink_asc_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.asc"):
        read_eyelink_asc(tmp_path / "missing.asc")
    p = tmp_path / "empty.asc"
    p.write_text(ASC_HEADER)
    with pytest.raises(ValueError, match=r"empty.asc: no gaze samples"):
        read_eyelink_asc(p)


TOBII = (
    "Recording timestamp [μs]\tSensor\tPresented Stimulus name\tGaze point X [DACS px]\tGaze point Y [DACS px]\t"
    "Pupil diameter left [mm]\tPupil diameter right [mm]\tValidity left\tValidity right\n"
    "1000000\tEye Tracker\timg1\t660\t340\t3,0\t3,2\tValid\tValid\n"
    "1008333\tEye Tracker\timg1\t670\t350\t3.1\t\tValid\tInvalid\n"
    "1010000\tMouse\timg1\t\t\t\t\t\t\n"
    "1016667\tEye Tracker\timg1\t\t\t\t\tInvalid\tInvalid\n"
    "1025000\tEye Tracker\timg2\t900\t900\t3.0\t3.0\tValid\tValid\n"
)


def test_tobii_tsv_units_sensors_media_validity(tmp_path):
    p = tmp_path / "rec.tsv"
    p.write_text(TOBII, encoding="utf-8")
    s = read_tobii_tsv(p, image_rect=(560, 240, 800, 600), image_size=(800, 600), media="img1")
    np.testing.assert_allclose(s.t_ms, [1000.0, 1008.333, 1016.667])  # µs -> ms
    np.testing.assert_allclose(s.x, [100.0, 110.0, np.nan])
    np.testing.assert_allclose(s.y, [100.0, 110.0, np.nan])
    np.testing.assert_allclose(s.pupil, [3.1, 3.1, np.nan], rtol=1e-6)  # decimal comma read
    np.testing.assert_allclose(s.confidence, [1.0, 0.5, 0.0])
    assert s.meta["n_other_sensor_rows"] == 1 and s.meta["n_other_media_rows"] == 1
    assert len(read_tobii_tsv(p)) == 4  # all media


def test_tobii_tsv_errors_name_line_and_column(tmp_path):
    p = tmp_path / "bad.tsv"
    p.write_text(TOBII.replace("\t670\t", "\tabc\t"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:3: column 'Gaze point X \[DACS px\]' is not a number: 'abc'"):
        read_tobii_tsv(p)
    q = tmp_path / "nohdr.tsv"
    q.write_text("Timestamp\tX\n1\t2\n")
    with pytest.raises(ValueError, match=r"nohdr.tsv:1: missing Tobii column\(s\) \['Recording timestamp'"):
        read_tobii_tsv(q)


def test_tobii_studio_header_in_ms(tmp_path):
    p = tmp_path / "studio.tsv"
    p.write_text("RecordingTimestamp\tGazePointX (ADCSpx)\tGazePointY (ADCSpx)\n0\t10\t20\n17\t11\t21\n")
    s = read_tobii_tsv(p)
    np.testing.assert_allclose(s.t_ms, [0, 17])
    np.testing.assert_allclose(s.x, [10, 11])


def test_pupil_labs_world_and_surface(tmp_path):
    p = tmp_path / "gaze_positions.csv"
    p.write_text(
        "gaze_timestamp,world_index,confidence,norm_pos_x,norm_pos_y\n"
        "10.000,0,0.9,0.5,0.5\n"
        "10.008,0,0.3,0.25,1.0\n"
        "10.008,0,0.95,0.25,0.75\n"  # same time stamp, more confident: kept
        "10.004,0,0.8,0.0,0.0\n"  # out of order
    )
    s = read_pupil_csv(p, frame_size=(1280, 720))
    np.testing.assert_allclose(s.t_ms, [10000.0, 10004.0, 10008.0])
    np.testing.assert_allclose(s.x, [640.0, 0.0, 320.0])
    np.testing.assert_allclose(s.y, [360.0, 720.0, 180.0])  # origin bottom left
    np.testing.assert_allclose(s.confidence, [0.9, 0.8, 0.95], rtol=1e-6)
    assert s.meta["n_duplicate_timestamps"] == 1 and s.meta["n_reordered"] == 1
    assert s.image_size == (1280, 720)
    _, rep = validate_samples(s, min_confidence=0.85, min_duration_ms=1, min_valid_samples=1)
    assert rep.n_low_confidence == 1
    surf = tmp_path / "gaze_positions_on_surface_Screen.csv"
    surf.write_text("world_timestamp,world_index,gaze_timestamp,x_norm,y_norm,on_surf,confidence\n1,0,1.0,0.1,0.9,True,1.0\n")
    s2 = read_pupil_csv(surf, frame_size=(800, 600))
    np.testing.assert_allclose([s2.x[0], s2.y[0]], [80.0, 60.0], rtol=1e-6)
    bad = tmp_path / "bad.csv"
    bad.write_text("gaze_timestamp,confidence,norm_pos_x,norm_pos_y\n1.0,0.9,0.5,0.5\n1.1,0.9,x,0.5\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: column 'norm_pos_x' is not a number: 'x'"):
        read_pupil_csv(bad, frame_size=(10, 10))


def test_generic_csv(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("t_ms,x,y,confidence\n0,1.5,2.5,1\n16.7,,,0\n33.3,nan,4,0.5\n")
    s = read_samples(p, "csv", source="webcam")
    assert s.source == "webcam"
    np.testing.assert_allclose(s.t_ms, [0, 16.7, 33.3])
    np.testing.assert_allclose(s.x, [1.5, np.nan, np.nan])
    assert s.pupil is None and s.confidence is not None
    bad = tmp_path / "bad.csv"
    bad.write_text("t_ms,x,y\n0,1,2\n,3,4\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: column 't_ms' is empty"):
        read_gaze_csv(bad)
    bad.write_text("time,x,y\n0,1,2\n")
    with pytest.raises(ValueError, match=r"bad.csv:1: missing column"):
        read_gaze_csv(bad)
    bad.write_text("t_ms,x,y\n0,1,2,9\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: more fields"):
        read_gaze_csv(bad)
    with pytest.raises(ValueError, match="unknown gaze file format"):
        read_samples(p, "edf")
