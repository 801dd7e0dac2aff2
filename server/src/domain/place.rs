//! Places and great-circle distances.
//!
//! Distances are haversine over the mean earth radius (`geo`). Bounding
//! boxes are conservative: they contain every point within the radius, so
//! an index query followed by the exact distance check misses nobody.

use geo::{Distance, Haversine, Point};
use p4p_protocol::{Alert, Location, Store};

use super::Invalid;

/// The mean earth radius `geo`'s haversine uses, in kilometres.
const EARTH_RADIUS_KM: f64 = 6_371.008_8;

/// Radii accepted for alerts and for stores' areas of interest.
pub const MIN_RADIUS_KM: f64 = 0.5;
pub const MAX_RADIUS_KM: f64 = 500.0;

/// A checked WGS 84 position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    lat: f64,
    lon: f64,
}

impl Place {
    /// `field` names the location in errors, e.g. `location`.
    pub fn parse(field: &str, location: Location) -> Result<Place, Invalid> {
        let Location { lat, lon } = location;
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(Invalid::new(
                format!("{field}.lat"),
                "must be between -90 and 90",
            ));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(Invalid::new(
                format!("{field}.lon"),
                "must be between -180 and 180",
            ));
        }
        Ok(Place { lat, lon })
    }

    /// A place read back from storage, which only ever holds checked places.
    pub fn from_stored(lat: f64, lon: f64) -> Place {
        Place { lat, lon }
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    pub fn lon(self) -> f64 {
        self.lon
    }

    pub fn location(self) -> Location {
        Location {
            lat: self.lat,
            lon: self.lon,
        }
    }

    /// Great-circle distance in kilometres.
    pub fn distance_km(self, other: Place) -> f64 {
        let a = Point::new(self.lon, self.lat);
        let b = Point::new(other.lon, other.lat);
        Haversine.distance(a, b) / 1000.0
    }

    /// The lon/lat boxes that together contain every point within
    /// `radius_km`: one box, or two where the circle crosses the
    /// antimeridian. Each is `([min_lon, min_lat], [max_lon, max_lat])`.
    pub fn bounding_boxes(self, radius_km: f64) -> Vec<([f64; 2], [f64; 2])> {
        // A little slack so rounding never puts a point on the edge outside.
        let angular = radius_km / EARTH_RADIUS_KM * 1.000_001 + 1e-9;
        let dlat = angular.to_degrees();
        let min_lat = self.lat - dlat;
        let max_lat = self.lat + dlat;
        if min_lat <= -90.0 || max_lat >= 90.0 || angular >= std::f64::consts::FRAC_PI_2 {
            // The circle reaches a pole: every longitude is in reach.
            return vec![([-180.0, min_lat.max(-90.0)], [180.0, max_lat.min(90.0)])];
        }
        let ratio = angular.sin() / self.lat.to_radians().cos();
        if ratio >= 1.0 {
            return vec![([-180.0, min_lat], [180.0, max_lat])];
        }
        let dlon = ratio.asin().to_degrees();
        let (west, east) = (self.lon - dlon, self.lon + dlon);
        if west < -180.0 {
            vec![
                ([-180.0, min_lat], [east, max_lat]),
                ([west + 360.0, min_lat], [180.0, max_lat]),
            ]
        } else if east > 180.0 {
            vec![
                ([west, min_lat], [180.0, max_lat]),
                ([-180.0, min_lat], [east - 360.0, max_lat]),
            ]
        } else {
            vec![([west, min_lat], [east, max_lat])]
        }
    }
}

/// A checked radius in kilometres, 0.5 to 500.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct RadiusKm(f64);

impl RadiusKm {
    pub fn parse(field: &str, km: f64) -> Result<RadiusKm, Invalid> {
        if !km.is_finite() || !(MIN_RADIUS_KM..=MAX_RADIUS_KM).contains(&km) {
            return Err(Invalid::new(
                field,
                format!("must be between {MIN_RADIUS_KM} and {MAX_RADIUS_KM} km"),
            ));
        }
        Ok(RadiusKm(km))
    }

    /// A radius read back from storage, which only ever holds checked radii.
    pub fn from_stored(km: f64) -> RadiusKm {
        RadiusKm(km)
    }

    pub fn km(self) -> f64 {
        self.0
    }
}

/// A circle on the earth: an alert's reach, or a store's area of interest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub center: Place,
    pub radius: RadiusKm,
}

impl Area {
    pub fn contains(self, place: Place) -> bool {
        self.center.distance_km(place) <= self.radius.km()
    }

    pub fn bounding_boxes(self) -> Vec<([f64; 2], [f64; 2])> {
        self.center.bounding_boxes(self.radius.km())
    }

    /// A store's area of interest (stores only ever hold checked values).
    pub fn of_store(store: &Store) -> Area {
        Area::from_stored(store.location, store.radius_km)
    }

    /// An alert's reach (alerts only ever hold checked values).
    pub fn of_alert(alert: &Alert) -> Area {
        Area::from_stored(alert.location, alert.radius_km)
    }

    fn from_stored(location: Location, radius_km: f64) -> Area {
        Area {
            center: Place::from_stored(location.lat, location.lon),
            radius: RadiusKm::from_stored(radius_km),
        }
    }
}

/// A grid of square-degree cells that the storage indexes every alert by,
/// with its id, so that the newest alerts near a place are read cell by
/// cell in id order, never by sorting every alert of a dense region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    /// The indexed column (migrations/*/0004_alerts_by_cell.sql).
    pub column: &'static str,
    /// Cells per degree: powers of two, so that scaling a coordinate is
    /// exact and the database computes the same cells as [`Grid::cell`].
    cells_per_degree: f64,
}

/// The grids, finest first: cells of about 1.7, 7, 28, 111 and 444 km.
pub const GRIDS: [Grid; 5] = [
    Grid {
        column: "cell_2km",
        cells_per_degree: 64.0,
    },
    Grid {
        column: "cell_7km",
        cells_per_degree: 16.0,
    },
    Grid {
        column: "cell_28km",
        cells_per_degree: 4.0,
    },
    Grid {
        column: "cell_111km",
        cells_per_degree: 1.0,
    },
    Grid {
        column: "cell_444km",
        cells_per_degree: 0.25,
    },
];

impl Grid {
    /// The cell holding a place: its row from the south pole times the
    /// number of columns, plus its column from the antimeridian.
    pub fn cell(self, place: Place) -> i64 {
        self.cell_at(self.row(place.lat), self.column_of(place.lon))
    }

    fn row(self, lat: f64) -> i64 {
        ((lat.clamp(-90.0, 90.0) + 90.0) * self.cells_per_degree).floor() as i64
    }

    fn column_of(self, lon: f64) -> i64 {
        ((lon.clamp(-180.0, 180.0) + 180.0) * self.cells_per_degree).floor() as i64
    }

    fn cell_at(self, row: i64, column: i64) -> i64 {
        let columns = (360.0 * self.cells_per_degree) as i64 + 1;
        row * columns + column
    }

    /// The cells that together hold every place in the boxes, or `None`
    /// if there are more than `max`.
    fn cover(self, boxes: &[([f64; 2], [f64; 2])], max: usize) -> Option<Vec<i64>> {
        let mut cells = Vec::new();
        for (low, high) in boxes {
            let rows = self.row(low[1])..=self.row(high[1]);
            let columns = self.column_of(low[0])..=self.column_of(high[0]);
            if cells.len() + rows.clone().count() * columns.clone().count() > max {
                return None;
            }
            for row in rows {
                cells.extend(columns.clone().map(|column| self.cell_at(row, column)));
            }
        }
        cells.sort_unstable();
        cells.dedup();
        Some(cells)
    }
}

/// The most cells one listing near a place reads.
pub const MAX_CELLS: usize = 16;

impl Area {
    /// The finest grid whose cells, at most [`MAX_CELLS`], hold every place
    /// within the area, with those cells; `None` where no grid does (an
    /// area that reaches a pole covers every longitude).
    pub fn covering_cells(self) -> Option<(Grid, Vec<i64>)> {
        let boxes = self.bounding_boxes();
        GRIDS
            .iter()
            .find_map(|grid| Some((*grid, grid.cover(&boxes, MAX_CELLS)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::Destination;

    fn place(lat: f64, lon: f64) -> Place {
        Place::parse("location", Location { lat, lon }).unwrap()
    }

    /// Known great-circle distances (mean earth radius), within 0.5%.
    #[test]
    fn haversine_matches_known_city_pairs() {
        let pairs = [
            // New York - Los Angeles
            ((40.7128, -74.0060), (34.0522, -118.2437), 3_936.0),
            // London - Paris
            ((51.5074, -0.1278), (48.8566, 2.3522), 343.5),
            // Sydney - Melbourne
            ((-33.8688, 151.2093), (-37.8136, 144.9631), 713.4),
            // New York - Philadelphia
            ((40.7128, -74.0060), (39.9526, -75.1652), 129.6),
            // Tokyo - Osaka
            ((35.6762, 139.6503), (34.6937, 135.5023), 392.4),
        ];
        for ((a_lat, a_lon), (b_lat, b_lon), expected) in pairs {
            let d = place(a_lat, a_lon).distance_km(place(b_lat, b_lon));
            let error = (d - expected).abs() / expected;
            assert!(
                error < 0.005,
                "{a_lat},{a_lon} -> {b_lat},{b_lon}: {d} km, expected {expected}"
            );
            let back = place(b_lat, b_lon).distance_km(place(a_lat, a_lon));
            assert!((d - back).abs() < 1e-9, "distance is symmetric");
        }
        assert_eq!(place(10.0, 10.0).distance_km(place(10.0, 10.0)), 0.0);
    }

    #[test]
    fn out_of_range_coordinates_are_refused_naming_the_field() {
        let err = Place::parse(
            "location",
            Location {
                lat: 90.5,
                lon: 0.0,
            },
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "location.lat must be between -90 and 90");
        let err = Place::parse(
            "location",
            Location {
                lat: 0.0,
                lon: -180.1,
            },
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "location.lon must be between -180 and 180");
        assert!(Place::parse(
            "location",
            Location {
                lat: f64::NAN,
                lon: 0.0
            }
        )
        .is_err());
        assert!(Place::parse(
            "location",
            Location {
                lat: 0.0,
                lon: f64::INFINITY
            }
        )
        .is_err());
        assert!(Place::parse(
            "location",
            Location {
                lat: -90.0,
                lon: 180.0
            }
        )
        .is_ok());
    }

    #[test]
    fn radius_limits_are_inclusive() {
        assert!(RadiusKm::parse("radius_km", 0.5).is_ok());
        assert!(RadiusKm::parse("radius_km", 500.0).is_ok());
        assert!(RadiusKm::parse("radius_km", 0.0).is_err());
        assert!(RadiusKm::parse("radius_km", 0.49).is_err());
        assert!(RadiusKm::parse("radius_km", 501.0).is_err());
        assert!(RadiusKm::parse("radius_km", f64::NAN).is_err());
    }

    fn inside_any(boxes: &[([f64; 2], [f64; 2])], p: Place) -> bool {
        boxes.iter().any(|(lo, hi)| {
            (lo[0]..=hi[0]).contains(&p.lon()) && (lo[1]..=hi[1]).contains(&p.lat())
        })
    }

    /// Repeatable numbers in [0, 1) (xorshift) for tests that sample places.
    fn unit_numbers(mut seed: u64) -> impl FnMut() -> f64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// A place at a random bearing, up to `max_km` from `center`, its
    /// longitude wrapped and its latitude kept on the globe.
    fn scattered(center: Place, max_km: f64, next: &mut impl FnMut() -> f64) -> Place {
        let origin = Point::new(center.lon(), center.lat());
        let to = Haversine.destination(origin, next() * 360.0, next() * max_km * 1_000.0);
        let lon = (to.x() + 540.0).rem_euclid(360.0) - 180.0;
        place(to.y().clamp(-90.0, 90.0), lon)
    }

    /// Every point within the radius lies in one of the boxes, including
    /// circles across the antimeridian and near the poles.
    #[test]
    fn bounding_boxes_contain_every_point_in_reach() {
        let centers = [
            place(40.7, -74.0),
            place(-33.9, 151.2),
            place(0.0, 179.9),
            place(0.0, -179.95),
            place(89.9, 0.0),
            place(-89.0, 45.0),
            place(64.0, -21.9),
        ];
        let mut next = unit_numbers(0x9e37_79b9_7f4a_7c15);
        for center in centers {
            for radius in [0.5, 10.0, 50.0, 500.0] {
                let boxes = center.bounding_boxes(radius);
                for _ in 0..2_000 {
                    // Points at every bearing, at distances up to just past the radius.
                    let p = scattered(center, radius * 1.05, &mut next);
                    if center.distance_km(p) <= radius {
                        assert!(
                            inside_any(&boxes, p),
                            "{p:?} within {radius} km of {center:?}"
                        );
                    }
                }
            }
        }
    }

    /// Every place within an area lies in one of its covering cells, and
    /// the grid chosen is the finest one with few enough cells.
    #[test]
    fn covering_cells_hold_every_place_in_reach() {
        let mut next = unit_numbers(0x2545_f491_4f6c_dd1d);
        for center in [
            place(40.7, -74.0),
            place(-33.9, 151.2),
            place(0.0, 179.9),
            place(0.0, 0.0),
        ] {
            for radius in [0.5, 5.0, 25.0, 100.0, 500.0] {
                let area = Area {
                    center,
                    radius: RadiusKm::from_stored(radius),
                };
                let (grid, cells) = area.covering_cells().expect("a grid");
                assert!(cells.len() <= MAX_CELLS);
                for _ in 0..2_000 {
                    let p = scattered(center, radius, &mut next);
                    if area.contains(p) {
                        assert!(cells.contains(&grid.cell(p)), "{p:?} near {center:?}");
                    }
                }
            }
        }
        let small = Area {
            center: place(40.7, -74.0),
            radius: RadiusKm::from_stored(0.5),
        };
        assert_eq!(small.covering_cells().expect("a grid").0, GRIDS[0]);
        let polar = Area {
            center: place(89.9, 0.0),
            radius: RadiusKm::from_stored(50.0),
        };
        assert_eq!(polar.covering_cells(), None);
    }

    /// Store edits (`PATCH /v1/me`) and listings near a point
    /// (`GET /v1/alerts?lat&lon&radius_km`) are checked by `Place::parse`
    /// and `RadiusKm::parse`, and a listing covers its area with cells.
    mod properties {
        use super::*;
        use crate::domain::arbitrary::{self, float, number, shaped};
        use p4p_protocol::MePatch;
        use proptest::prelude::*;

        fn assert_on_the_globe(place: Place) {
            assert!(place.lat().is_finite() && (-90.0..=90.0).contains(&place.lat()));
            assert!(place.lon().is_finite() && (-180.0..=180.0).contains(&place.lon()));
        }

        fn assert_a_radius(radius: RadiusKm) {
            let km = radius.km();
            assert!(
                km.is_finite() && (MIN_RADIUS_KM..=MAX_RADIUS_KM).contains(&km),
                "{km}"
            );
        }

        proptest! {
            #![proptest_config(arbitrary::config())]

            /// Any numbers for a listing near a point: refused, or an area
            /// on the globe whose boxes stay on it and whose covering cells
            /// (at most MAX_CELLS) hold its center.
            #[test]
            fn any_listing_area_is_refused_or_on_the_globe(
                lat in number(-90.0, 90.0),
                lon in number(-180.0, 180.0),
                km in number(MIN_RADIUS_KM, MAX_RADIUS_KM),
            ) {
                let center = Place::parse("location", Location { lat, lon });
                let radius = RadiusKm::parse("radius_km", km);
                if let Err(error) = &center {
                    assert!(error.field == "location.lat" || error.field == "location.lon");
                }
                if let Err(error) = &radius {
                    assert_eq!(error.field, "radius_km");
                }
                let (Ok(center), Ok(radius)) = (center, radius) else {
                    return Ok(());
                };
                assert_on_the_globe(center);
                assert_a_radius(radius);
                let area = Area { center, radius };
                for (low, high) in area.bounding_boxes() {
                    assert!(low[0] >= -180.0 && high[0] <= 180.0 && low[0] <= high[0]);
                    assert!(low[1] >= -90.0 && high[1] <= 90.0 && low[1] <= high[1]);
                    assert!(low.iter().chain(&high).all(|v| v.is_finite()));
                }
                if let Some((grid, cells)) = area.covering_cells() {
                    assert!(!cells.is_empty() && cells.len() <= MAX_CELLS);
                    assert!(cells.contains(&grid.cell(center)));
                }
            }

            /// Any JSON body for PATCH /v1/me: what is accepted is a place
            /// on the globe and a radius within the limits.
            #[test]
            fn any_store_edit_is_refused_or_within_the_limits(
                body in shaped(vec![
                    ("location", arbitrary::location()),
                    ("radius_km", float(MIN_RADIUS_KM, MAX_RADIUS_KM)),
                ]),
                current_km in MIN_RADIUS_KM..=MAX_RADIUS_KM,
            ) {
                let Ok(patch) = serde_json::from_value::<MePatch>(body) else {
                    return Ok(());
                };
                // As http/me.rs does: the missing half stays as it is.
                let center = match patch.location {
                    Some(location) => Place::parse("location", location),
                    None => Ok(Place::from_stored(40.7, -74.0)),
                };
                let radius = RadiusKm::parse("radius_km", patch.radius_km.unwrap_or(current_km));
                if let (Ok(center), Ok(radius)) = (center, radius) {
                    assert_on_the_globe(center);
                    assert_a_radius(radius);
                }
            }
        }
    }
}
